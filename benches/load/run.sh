#!/usr/bin/env bash
# Load test of the FHIR API: `benches/load/run.sh DATABASE_URL` against a seeded database
# (seed it first: iop-gateway --database-url URL seed --clients 100000). Starts the release
# gateway, then for reads and patient-scoped CarePlan searches over random patients runs
#   - oha at a fixed rate (2,000/s reads, 500/s searches: latency percentiles at that rate),
#     when oha is installed,
#   - wrk with 16 connections (the most the gateway serves, with its latency then).
# Results go to stdout; docs/benchmarks.md records them with the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
DB="$1"
PORT="${PORT:-18099}"
DURATION="${DURATION:-20s}"
BIN=target/release/iop-gateway
[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
IOP_LOG=warn "$BIN" --database-url "$DB" serve --open-access --listen "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
# 2,000 random patient ids, read through the API itself (paging with _elements=id).
python3 - "$PORT" "$WORK/ids.txt" <<'PY'
import json, random, sys, urllib.request
port, out = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}/fhir/Patient?_count=1000&_elements=id"
ids = []
while url and len(ids) < 20000:
    bundle = json.load(urllib.request.urlopen(url))
    ids += [e["resource"]["id"] for e in bundle.get("entry", [])]
    url = next((l["url"] for l in bundle.get("link", []) if l["relation"] == "next"), None)
random.seed(1)
open(out, "w").write("\n".join(random.sample(ids, min(2000, len(ids)))) + "\n")
PY
export IDS_FILE="$WORK/ids.txt"
for run in "/fhir/Patient/{id} 2000" "/fhir/CarePlan?patient={id} 500"; do
    template=${run% *}
    rate=${run#* }
    echo "== GET $template"
    if command -v oha >/dev/null; then
        # oha takes one URL: each request draws a random patient from the same list.
        head -200 "$IDS_FILE" > "$WORK/ids200.txt"
        first=$(head -1 "$IDS_FILE")
        url="http://127.0.0.1:$PORT${template/\{id\}/$first}"
        echo "oha, fixed $rate requests/s, one patient:"
        oha --no-tui -q "$rate" -z "$DURATION" -c 32 "$url" | grep -E "Requests/sec|Success rate|50.00%|90.00%|99.00%|99.90%" || true
    fi
    echo "wrk, 16 connections, random patients:"
    PATH_TEMPLATE="$template" wrk -t 2 -c 16 -d "$DURATION" -s benches/load/random-path.lua "http://127.0.0.1:$PORT" | tail -1
done
