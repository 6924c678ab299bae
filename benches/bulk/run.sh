#!/usr/bin/env bash
# Bulk Data $export as an EHR meets it: a seeded clinic, `serve` (release build), a system-level
# export by a client acting for the clinic, from kick-off to manifest; prints resources written,
# seconds, resources per second and the server's peak RSS (VmHWM, which includes serving).
#
#   benches/bulk/run.sh CLIENTS [DATABASE_URL]
#
# DATABASE_URL defaults to a new SQLite file; give a PostgreSQL URL of an empty database to
# measure PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/bulkbench after createdb).
# GATEWAY=/path/to/iop-gateway measures that build instead of building this checkout (for A/B runs).
# SCATTER=1 (SQLite only) gives the sessions random ids after seeding, as real data orders them
# (benches/bulk/scatter_ids.py; seeded ids group each client's rows together).
# On a VM, touch the guest's free memory once before measuring: its first touch is about ten
# times slower than later ones, and an export writes its files into fresh page cache
# (docs/benchmarks.md, "two costs that were not the export's"):
#   dd if=/dev/zero of=/dev/shm/warm bs=1M count=17000; rm /dev/shm/warm
set -euo pipefail
clients=${1:?number of clients}
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
url=${2:-sqlite://$work/clinic.db}
. "$here/benches/bulk/gateway.sh"
cd "$work"
export IOP_LOG=warn
"$gw" --database-url "$url" seed --clients "$clients" >/dev/null
if [ -n "${SCATTER:-}" ]; then
    case "$url" in
        sqlite://*) python3 "$here/benches/bulk/scatter_ids.py" "${url#sqlite://}" >/dev/null ;;
        *) echo "SCATTER=1 is for SQLite only"; exit 1 ;;
    esac
fi
"$gw" --database-url "$url" demo --listen 127.0.0.1:0 >serve.out 2>serve.err &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
# `demo` registers its client after it starts listening and prints a token once it has.
for _ in $(seq 1 100); do grep -q "TOKEN=" serve.out 2>/dev/null && break; sleep 0.2; done
base=$(sed -n 's/^listening on //p' serve.out | head -1)
token=$("$gw" --database-url "$url" token --client demo --scope "system/*.rs" 2>/dev/null | tail -1)
start=$(date +%s.%N)
status=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $token" -H "Prefer: respond-async" \
    -H "Accept: application/fhir+json" "$base/fhir/\$export" | tr -d '\r' | sed -n 's/^content-location: //Ip')
while :; do
    code=$(curl -s -o manifest.json -w '%{http_code}' -H "Authorization: Bearer $token" "$status")
    [ "$code" = 200 ] && break
    [ "$code" = 202 ] || [ "$code" = 429 ] || { echo "status $code"; cat manifest.json; exit 1; }
    sleep 0.6
done
end=$(date +%s.%N)
written=$(python3 -c 'import json;print(sum(f["count"] for f in json.load(open("manifest.json"))["output"]))')
peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
python3 - "$clients" "$written" "$start" "$end" "$peak" <<'PY'
import sys
clients, written, start, end, peak = sys.argv[1:]
seconds = float(end) - float(start)
print(f"clients {clients}: {int(written):,} resources in {seconds:.1f} s = {int(written)/seconds:,.0f} resources/s; server peak RSS {int(peak)/1024:.0f} MB")
PY
