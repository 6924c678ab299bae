#!/usr/bin/env bash
# Push throughput against the EHR stand-in, beside posting the same resources straight to it with
# the same concurrency, in one run (docs/benchmarks.md). Usage: benches/sync/run.sh [CLIENTS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-200}
concurrency=${2:-8}
port=${PORT:-18190}
work=$(mktemp -d)
trap 'kill -- -$standin 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet
gw=target/release/iop-gateway
export IOP_DATABASE_URL="sqlite://$work/clinic.db" IOP_LOG=warn

start_standin() {
    set -m
    PORT=$port ../shared/ehr-standin/run server >"$work/standin.log" 2>&1 &
    standin=$!
    set +m
    until curl -sf "http://127.0.0.1:$port/fhir/R4/metadata" >/dev/null; do sleep 0.2; done
}

$gw seed --clients "$clients" --seed 7 --as-of 2026-11-02 >/dev/null 2>&1
# The same resources the push sends: what the consent gate lets the clinic's own EHR have.
clinic=$(sqlite3 "$work/clinic.db" "SELECT id FROM organizations WHERE kind = 'clinic' LIMIT 1")
$gw export --out "$work/out" --recipient "$clinic" >/dev/null 2>&1
rm -f "$work"/out/HealthcareService.ndjson "$work"/out/PART2-NOTICE.txt

start_standin
echo "direct: POST each resource of $work/out, $concurrency at a time"
python3 benches/sync/post_all.py "http://127.0.0.1:$port/fhir/R4" "$concurrency" "$work"/out/*.ndjson
kill -- -$standin; wait $standin 2>/dev/null || true

# The gateway, on a fresh target each time: batch Bundles (the default), then one request per
# resource (--no-batch), the same shape of traffic as the direct POSTs.
for mode in "" "--no-batch"; do
    start_standin
    $gw targets remove ehr >/dev/null 2>&1 || true
    $gw targets add ehr --base-url "http://127.0.0.1:$port/fhir/R4" >/dev/null 2>&1
    echo "gateway: sync push --concurrency $concurrency $mode"
    /usr/bin/time -f "gateway: %e s wall, %M KiB peak RSS" \
        $gw sync push --target ehr --concurrency "$concurrency" $mode 2>&1 | grep -E "^push|gateway:"
    kill -- -$standin; wait $standin 2>/dev/null || true
done
