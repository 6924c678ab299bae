// Drives a running iop-gateway with fhir-kit-client (npm), a FHIR client this project did not
// write: metadata, read, search and follow every page, create, conditional update, transaction,
// a referral in two creates.
// Usage: node fhir-kit-client.mjs http://127.0.0.1:PORT/fhir ACCESS_TOKEN   (exit 0 when every check holds)
import { Client } from 'fhir-kit-client';
import assert from 'node:assert/strict';

const base = process.argv[2];
const token = process.argv[3];
assert.ok(token, 'an access token is the second argument');
const client = new Client({ baseUrl: base, bearerToken: token });
const MRN = 'https://iop-gateway.org/fhir/clinic/mrn';

const capability = await client.capabilityStatement();
assert.equal(capability.fhirVersion, '4.0.1');

// Search and follow every page.
const total = (await client.search({ resourceType: 'Patient', searchParams: { _summary: 'count' } })).total;
let bundle = await client.search({ resourceType: 'Patient', searchParams: { _count: 4 } });
const ids = new Set();
let pages = 0;
while (bundle) {
  pages += 1;
  for (const entry of bundle.entry ?? []) {
    assert.ok(!ids.has(entry.resource.id), 'no Patient twice');
    ids.add(entry.resource.id);
  }
  bundle = await client.nextPage({ bundle });
}
assert.equal(ids.size, total);
assert.ok(pages > 1);

// Read, and the care plans of that patient.
const [first] = ids;
const patient = await client.read({ resourceType: 'Patient', id: first });
assert.equal(patient.id, first);
const plans = await client.search({ resourceType: 'CarePlan', searchParams: { patient: first } });
for (const entry of plans.entry ?? []) {
  assert.equal(entry.resource.subject.reference, `Patient/${first}`);
}

// Create a Patient, then update it conditionally by MRN.
const fresh = structuredClone(patient);
delete fresh.id;
delete fresh.meta;
fresh.identifier = [{ system: MRN, value: 'KIT0001' }];
const created = await client.create({ resourceType: 'Patient', body: fresh });
assert.ok(created.id && created.id !== first);
const changed = { ...created, gender: created.gender === 'female' ? 'male' : 'female' };
delete changed.meta;
const updated = await client.update({
  resourceType: 'Patient',
  searchParams: { identifier: `${MRN}|KIT0001` },
  body: changed,
});
assert.equal(updated.id, created.id);
assert.equal(updated.gender, changed.gender);
assert.equal(updated.meta.versionId, '2');

// A transaction: a Patient and a RelatedPerson that refers to it by urn:uuid.
const other = structuredClone(fresh);
other.identifier = [{ system: MRN, value: 'KIT0002' }];
const response = await client.transaction({
  body: {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:0d0c0000-0000-4000-8000-000000000001', resource: other, request: { method: 'POST', url: 'Patient' } },
    ],
  },
});
assert.equal(response.type, 'transaction-response');
assert.equal(response.entry[0].response.status, '201 Created');

// A referral the RESTful way (HL7 BSeR): the ServiceRequest with its Patient and requester
// contained, then the Task naming it by its placer identifier; the clinic's Task is found by the
// hospital's identifier, received (BSeR 2.0).
const PLAC = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }] };
const PLACER = 'urn:oid:2.16.840.1.113883.19.5.99.7';
const requestPlacer = { type: PLAC, system: PLACER, value: 'kit-sr-1' };
const heldAnswer = await client.create({
  resourceType: 'ServiceRequest',
  body: {
    resourceType: 'ServiceRequest',
    contained: [
      { resourceType: 'Patient', id: 'p', identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5.99', value: 'KIT-H1' }], name: [{ family: 'Okonkwo-Reyes', given: ['Tamsin'] }], gender: 'female', birthDate: '1979-06-02' },
      { resourceType: 'Organization', id: 'org', name: 'Lakeside Behavioral Hospital' },
    ],
    identifier: [requestPlacer],
    status: 'active',
    intent: 'order',
    subject: { reference: '#p' },
    requester: { reference: '#org' },
    authoredOn: '2026-11-20',
    reasonCode: [{ text: 'Step-down after inpatient stabilization' }],
  },
});
assert.equal(heldAnswer.resourceType, 'OperationOutcome');
await client.create({
  resourceType: 'Task',
  body: {
    resourceType: 'Task',
    identifier: [{ type: PLAC, system: PLACER, value: 'kit-task-1' }],
    status: 'requested',
    intent: 'order',
    code: { coding: [{ system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill' }] },
    focus: { identifier: { system: PLACER, value: 'kit-sr-1' } },
    authoredOn: '2026-11-20T09:30:00Z',
  },
});
const referred = await client.search({ resourceType: 'Task', searchParams: { identifier: `${PLACER}|kit-task-1` } });
assert.equal(referred.entry.length, 1);
assert.equal(referred.entry[0].resource.status, 'received');
assert.equal(referred.entry[0].resource.businessStatus.coding[0].code, '2.0');

// Errors come back as OperationOutcomes.
await assert.rejects(client.read({ resourceType: 'Patient', id: '0195a0b2-0000-7000-8000-00000000dead' }), (err) => {
  assert.equal(err.response.status, 404);
  assert.equal(err.response.data.resourceType, 'OperationOutcome');
  return true;
});
console.log(`fhir-kit-client: ok (${ids.size} patients over ${pages} pages)`);
