// Packs every FHIR R4 (4.0.1) conformance resource a validator needs offline into fhir-profiles/r4/:
// all resource and data type StructureDefinitions, the core profiles and extension definitions, and
// every ValueSet and CodeSystem the specification ships (FHIR, v2 tables, v3 code systems).
//
// The gateway compiles them in and parses one only when a validation first asks for it, so the
// pack is made for random access:
//   definitions.deflate  each resource's minified JSON (narrative `text` removed), raw-deflated on
//                        its own, one after the other
//   index.json           one line per resource: [resourceType, canonical url, base type or "",
//                        offset, length]; the base type is given only for the definition of a type
//                        itself (derivation specialization), which is how `Patient` or `string`
//                        is found by name
// Also copies the R4 JSON Schema into fhir-profiles/r4-schema/.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const [definitions, out] = process.argv.slice(2);
const BUNDLES = ['profiles-types.json', 'profiles-resources.json', 'profiles-others.json', 'extension-definitions.json',
  'valuesets.json', 'v3-codesystems.json', 'v2-tables.json'];
const KINDS = ['StructureDefinition', 'ValueSet', 'CodeSystem'];

const byKey = new Map();
for (const bundle of BUNDLES) {
  for (const { resource } of JSON.parse(fs.readFileSync(path.join(definitions, bundle), 'utf8')).entry) {
    if (!KINDS.includes(resource.resourceType) || !resource.url) continue;
    const key = `${resource.resourceType} ${resource.url.split('|')[0]}`;
    // The first bundle to define a canonical wins (valuesets.json before the v2/v3 copies).
    if (!byKey.has(key)) byKey.set(key, resource);
  }
}

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const chunks = [];
const lines = [];
let offset = 0;
const ordered = [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
for (const [, resource] of ordered) {
  const { text, ...rest } = resource;
  const packed = zlib.deflateRawSync(Buffer.from(JSON.stringify(rest)), { level: 9 });
  const baseType = resource.resourceType === 'StructureDefinition' && resource.derivation !== 'constraint'
    ? resource.type ?? '' : '';
  lines.push(JSON.stringify([resource.resourceType, resource.url.split('|')[0], baseType, offset, packed.length]));
  chunks.push(packed);
  offset += packed.length;
}
fs.writeFileSync(path.join(out, 'definitions.deflate'), Buffer.concat(chunks));
fs.writeFileSync(path.join(out, 'index.json'), `[\n${lines.join(',\n')}\n]\n`);

// The R4 JSON Schema as published with the definitions (the validator's structural pre-check).
const schemaDir = path.join(path.dirname(out), 'r4-schema');
fs.rmSync(schemaDir, { recursive: true, force: true });
fs.mkdirSync(schemaDir, { recursive: true });
fs.copyFileSync(path.join(definitions, 'fhir.schema.json'), path.join(schemaDir, 'fhir.schema.json'));
const count = (kind) => ordered.filter(([key]) => key.startsWith(`${kind} `)).length;
console.log(`fhir-profiles/r4: ${count('StructureDefinition')} StructureDefinitions, ${count('ValueSet')} ValueSets, `
  + `${count('CodeSystem')} CodeSystems, ${(offset / 1048576).toFixed(1)} MiB packed`);
