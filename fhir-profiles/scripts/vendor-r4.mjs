// Copies the subset of the FHIR R4 (4.0.1) definitions the gateway uses into fhir-profiles/r4/:
// the StructureDefinitions of the resource types it maps, every data type, and the ValueSets and
// CodeSystems that their required bindings name (what a validator needs offline).
import fs from 'node:fs';
import path from 'node:path';

const [definitions, out] = process.argv.slice(2);
const RESOURCES = ['Patient', 'Practitioner', 'Organization', 'CarePlan', 'Goal', 'Encounter', 'EpisodeOfCare',
  'RelatedPerson', 'Consent', 'ServiceRequest', 'Task', 'HealthcareService', 'Group', 'Bundle', 'OperationOutcome', 'DomainResource', 'Resource'];
const load = (name) => JSON.parse(fs.readFileSync(path.join(definitions, name), 'utf8')).entry.map((e) => e.resource);
const structureDefinitions = [...load('profiles-resources.json'), ...load('profiles-types.json')]
  .filter((r) => r.resourceType === 'StructureDefinition');
const keep = structureDefinitions.filter((sd) =>
  (sd.kind === 'resource' && RESOURCES.includes(sd.id)) || sd.kind === 'complex-type' || sd.kind === 'primitive-type');
const terminology = [...load('valuesets.json'), ...load('v3-codesystems.json'), ...load('v2-tables.json')];
const byUrl = new Map(terminology.filter((r) => r.url).map((r) => [r.url.split('|')[0], r]));

const wanted = new Set();
for (const sd of keep) {
  for (const element of sd.snapshot?.element ?? []) {
    const binding = element.binding;
    if (binding?.strength === 'required' && binding.valueSet) wanted.add(binding.valueSet.split('|')[0]);
  }
}
const picked = new Map();
for (const url of wanted) {
  const valueSet = byUrl.get(url);
  if (!valueSet) continue;
  picked.set(url, valueSet);
  for (const include of valueSet.compose?.include ?? []) {
    const codeSystem = include.system && byUrl.get(include.system);
    if (codeSystem && codeSystem.resourceType === 'CodeSystem') picked.set(include.system, codeSystem);
  }
}
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
for (const resource of [...keep, ...picked.values()]) {
  fs.writeFileSync(path.join(out, `${resource.resourceType}-${resource.id}.json`), JSON.stringify(resource, null, 1) + '\n');
}
// The R4 JSON Schema as published with the definitions (the validator's structural pre-check).
const schemaDir = path.join(path.dirname(out), 'r4-schema');
fs.rmSync(schemaDir, { recursive: true, force: true });
fs.mkdirSync(schemaDir, { recursive: true });
fs.copyFileSync(path.join(definitions, 'fhir.schema.json'), path.join(schemaDir, 'fhir.schema.json'));
console.log(`fhir-profiles/r4: ${keep.length} StructureDefinitions, ${picked.size} ValueSets and CodeSystems`);
