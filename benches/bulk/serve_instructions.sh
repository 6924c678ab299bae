#!/usr/bin/env bash
# Instructions of a Bulk `$export` as `serve` runs it (parts, workers, gates), deterministic where
# wall-clock time is not: callgrind over `demo` on a seeded clinic while the `demo` client's
# system-level export runs from kick-off to finish. Prints the resources written and the
# instruction count. (`instructions.sh` measures the `export` command instead.)
#
#   benches/bulk/serve_instructions.sh [CLIENTS]      # default 2,000 (about 70 s under callgrind)
#
# GATEWAY=/path/to/iop-gateway measures that build instead of building this checkout.
# SCATTER=1 gives the sessions random ids after seeding (benches/bulk/scatter_ids.py).
set -euo pipefail
clients=${1:-2000}
here=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
. "$here/benches/bulk/gateway.sh"
work=$(mktemp -d)
url=sqlite://$work/clinic.db
"$gw" --database-url "$url" seed --clients "$clients" --as-of 2026-11-20 >/dev/null 2>&1
if [ -n "${SCATTER:-}" ]; then python3 "$here/benches/bulk/scatter_ids.py" "$work/clinic.db" >/dev/null; fi
cd "$work"
IOP_LOG=info IOP_RATE_LIMIT=1000000 IOP_RATE_BURST=1000000 IOP_EXPORT_DIR="$work/exports" \
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$gw" --database-url "$url" demo --listen 127.0.0.1:0 --no-console >serve.out 2>serve.err &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do grep -q "TOKEN=" serve.out 2>/dev/null && break; sleep 0.5; done
base=$(sed -n 's/^listening on //p' serve.out | head -1)
token=$(sed -n 's/^ *TOKEN=//p' serve.out | head -1)
curl -s -o /dev/null -H "Authorization: Bearer $token" -H "Prefer: respond-async" \
    -H "Accept: application/fhir+json" "$base/fhir/\$export"
for _ in $(seq 1 3600); do grep -q '"export finished"' serve.err && break; sleep 0.5; done
grep '"export finished"' serve.err | grep -o '"resources":[0-9]*' | sed 's/"resources":/resources written: /'
kill -TERM $pid
wait $pid 2>/dev/null || true
callgrind_annotate "$work/callgrind.out" 2>/dev/null | grep "PROGRAM TOTALS"
