#!/usr/bin/env bash
# Instructions per exported resource, deterministic where wall-clock time is not: callgrind over
# the `export` command with the consent gate on (`--recipient`: the clinic, as the `demo` API
# client acts), on a seeded clinic. Prints the instruction count and, per file, the line count
# and the md5sum of its sorted lines (to check two builds wrote the same).
#
#   benches/bulk/instructions.sh [CLIENTS]          # default 1,000 (about 50 s under callgrind)
#
# GATEWAY=/path/to/iop-gateway measures that build instead of building this checkout.
# SCATTER=1 gives the sessions random ids after seeding, as real data orders them
# (benches/bulk/scatter_ids.py); the gate's reloading of clients shows only with more clients
# than a gate keeps (2,000): e.g. `SCATTER=1 benches/bulk/instructions.sh 5000`.
set -euo pipefail
clients=${1:-1000}
here=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
. "$here/benches/bulk/gateway.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
url=sqlite://$work/clinic.db
export IOP_LOG=warn
"$gw" --database-url "$url" seed --clients "$clients" >/dev/null
if [ -n "${SCATTER:-}" ]; then python3 "$here/benches/bulk/scatter_ids.py" "$work/clinic.db" >/dev/null; fi
clinic=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT id FROM organizations WHERE kind = 'clinic' ORDER BY id LIMIT 1\").fetchone()[0])" "$work/clinic.db")
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$gw" --database-url "$url" \
    export --out "$work/out" --recipient "$clinic" --as-of 2026-12-06 2>&1 | grep -E "Collected|exported"
(cd "$work/out" && for f in *.ndjson; do echo "$f $(wc -l < "$f") $(sort "$f" | md5sum | cut -c1-12)"; done)
