// HL7's JavaScript FHIRPath engine (npm `fhirpath`, R4 model) for tests/fhirpath_differential.rs.
// Reads one case per line on stdin, {"input": <index into the first line's resources>,
// "expression": "..."}, after a first line holding the resources; writes one line per case:
// {"ok": [values]} or {"error": "message"}. Values are JSON: FHIR nodes as they are, System values
// as the engine converts its internal types (dates and quantities become strings).
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';
import readline from 'node:readline';

// The engine logs notes (a truncated quantity, `trace()`) with console.log: keep stdout for answers.
console.log = (...args) => process.stderr.write(args.join(' ') + '\n');

const lines = readline.createInterface({ input: process.stdin });
let resources = null;
for await (const line of lines) {
  if (resources === null) {
    resources = JSON.parse(line);
    continue;
  }
  const { input, expression } = JSON.parse(line);
  let answer;
  try {
    // A fresh copy each time: the engine may annotate what it is given.
    const resource = structuredClone(resources[input]);
    const result = fhirpath.evaluate(resource, expression, null, r4, { resolveInternalTypes: true });
    answer = { ok: JSON.parse(JSON.stringify(result)) };
  } catch (error) {
    answer = { error: String(error && error.message ? error.message : error).slice(0, 200) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
