#!/usr/bin/env bash
# Long fuzz runs: `benches/fuzz/run.sh SECONDS [TARGET...]` runs each target (json_reader,
# validator, fhirpath, search; all by default) for SECONDS, one after the other, and prints a
# summary line per target. What a target does with an input is tests/fuzz/drive.rs.
#
# Engine: libFuzzer through cargo-fuzz (`cargo install cargo-fuzz`) when installed — coverage
# guided, seeded with fixtures/fhir/, the official FHIRPath R4 suite's expressions and search
# query strings; a release build with debug assertions and overflow checks on (`-a`), no
# sanitizer (safe Rust; a panic is what is looked for). cargo-fuzz wants a nightly compiler;
# RUSTC_BOOTSTRAP=1 lets the stable one accept its flags. Without cargo-fuzz (or with
# FUZZ_ENGINE=test), the seeded mutation loop of tests/fuzz.rs runs instead, for SECONDS per
# target (FUZZ_SEED to vary it). Crashing inputs: fuzz/artifacts/TARGET/ (libFuzzer) or
# target/fuzz-findings/ (the loop).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${1:?usage: benches/fuzz/run.sh SECONDS [TARGET...]}"
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(json_reader validator fhirpath search)
SUITE="${IOP_SHARED_DIR:-../shared}/fhirpath-tests/tests-fhir-r4.json"
ENGINE="${FUZZ_ENGINE:-}"
if [ -z "$ENGINE" ]; then
    if cargo fuzz --version >/dev/null 2>&1; then ENGINE=libfuzzer; else ENGINE=test; fi
fi
echo "engine: $ENGINE; $SECONDS_PER_TARGET s per target; $(nproc) cores; $(date -u +%FT%TZ)"

if [ "$ENGINE" = test ]; then
    declare -A TEST=([json_reader]=fuzz_json_reader [validator]=fuzz_validator
        [fhirpath]=fuzz_fhirpath [search]=fuzz_search_parameters)
    for t in "${TARGETS[@]}"; do
        FUZZ_SECONDS="$SECONDS_PER_TARGET" nice -n 15 cargo test --test fuzz -- --exact "${TEST[$t]}" \
            2>&1 | grep -E '^fuzz |panicked|skipping'
    done
    exit 0
fi

export RUSTC_BOOTSTRAP=1
# Seed corpora (libFuzzer adds what it finds beside them).
seed() { mkdir -p "fuzz/corpus/$1"; }
seed json_reader; seed validator; seed fhirpath; seed search
cp fixtures/fhir/*.json fuzz/corpus/json_reader/
cp fixtures/fhir/*.json fuzz/corpus/validator/
if [ -f "$SUITE" ]; then
    python3 - "$SUITE" fuzz/corpus/fhirpath <<'PY'
import json, sys
suite, out = sys.argv[1], sys.argv[2]
for i, test in enumerate(json.load(open(suite))["tests"]):
    open(f"{out}/suite-{i:04}", "w").write(test["expression"])
PY
else
    echo "no FHIRPath suite at $SUITE: the fhirpath target starts from an empty corpus"
fi
i=0
for q in 'Patient?gender=female&birthdate=ge1960-01&_count=10' \
    'CarePlan?patient=Patient/0195a0b2-0000-7000-8000-000000000001&status=active,draft&_sort=-date' \
    'Encounter?date=sa2026-03-10T10:00:00Z&class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB' \
    'Goal?lifecycle-status=active&target-date=lt2026-06&_elements=id,target' \
    'Consent?identifier=https://iop-gateway.org/fhir/clinic/consent|0195a0b2-0000-7000-8000-000000000001' \
    'Patient?_lastUpdated=ge2026-01-01T00:00:00Z&_include=Patient:organization&_revinclude=CarePlan:patient' \
    'Task?authored-on=eb2026-03&_cursor=2026-03-10~0195a0b2-0000-7000-8000-000000000001&_summary=count' \
    'RelatedPerson?relationship=|MTH&name=pat&_before=0195a0b2-0000-7000-8000-000000000001'; do
    printf '%s' "$q" >"fuzz/corpus/search/seed-$i"
    i=$((i + 1))
done

(cd fuzz && nice -n 15 cargo fuzz build -s none -a)
BIN=fuzz/target/x86_64-unknown-linux-gnu/release
for t in "${TARGETS[@]}"; do
    log="fuzz/$t.log"
    mkdir -p "fuzz/artifacts/$t"
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    # -fork=1 -ignore_crashes=1: a crash is recorded (fuzz/artifacts/TARGET/) and the run goes
    # on, so one known bug does not end it; -timeout: an input running 30 s counts as a hang.
    (cd fuzz && nice -n 15 cargo fuzz run -s none -a "$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=2048 -max_len=65536 \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1) >"$log" 2>&1 || true
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
    runs=$(echo "$last" | grep -oE '^#[0-9]+' | tr -d '#')
    cov=$(echo "$last" | grep -oE 'cov: [0-9]+')
    crashes=$(echo "$last" | grep -oE 'oom/timeout/crash: [0-9/]+')
    corpus=$(ls "fuzz/corpus/$t" | wc -l)
    echo "fuzz $t: ${runs:-?} inputs in $SECONDS_PER_TARGET s, ${cov:-cov ?}, corpus $corpus, ${crashes:-no stats} (log $log)"
    # Where each new crashing input panics (its first panic line), counted.
    ls -t "fuzz/artifacts/$t" | head -n $(($(ls "fuzz/artifacts/$t" | wc -l) - before)) | while read -r a; do
        "$BIN/$t" "fuzz/artifacts/$t/$a" 2>&1 | grep -m1 -E 'panicked at|overflow|ERROR' || echo "$a: no panic on re-run"
    done | sed -E 's/thread .* panicked at/panicked at/' | sort | uniq -c
done
