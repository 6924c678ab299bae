"""Drives a running iop-gateway with fhirpy (PyPI), a FHIR client this project did not write:
metadata, read, search and follow every page, create, conditional update, transaction.

Usage: python fhirpy_client.py http://127.0.0.1:PORT/fhir ACCESS_TOKEN   (exit 0 when every check holds)
"""
import sys

import requests
from fhirpy import SyncFHIRClient

base = sys.argv[1]
token = sys.argv[2]
client = SyncFHIRClient(base, authorization=f"Bearer {token}")
MRN = "https://iop-gateway.org/fhir/clinic/mrn"

capability = client.execute("metadata", method="get")
assert capability["fhirVersion"] == "4.0.1"

# Search and follow every page (fhirpy follows Bundle.link next itself).
patients = client.resources("Patient").limit(3).fetch_all()
ids = [p.id for p in patients]
assert len(ids) == len(set(ids)), "no Patient twice"
total = client.resources("Patient").count()
assert len(ids) == total, (len(ids), total)

# Read, and a patient-scoped search.
first = client.reference("Patient", ids[0]).to_resource()
assert first.id == ids[0]
for plan in client.resources("CarePlan").search(patient=ids[0]).fetch_all():
    assert plan["subject"]["reference"] == f"Patient/{ids[0]}"

# Create, then conditional update by MRN.
fresh = client.resource("Patient", **{k: v for k, v in first.serialize().items() if k not in ("id", "meta")})
fresh["identifier"] = [{"system": MRN, "value": "PY00001"}]
fresh.save()
assert fresh.id and fresh.id != ids[0]
fresh["gender"] = "other"
body = {k: v for k, v in fresh.serialize().items() if k != "meta"}
response = requests.put(
    f"{base}/Patient",
    params={"identifier": f"{MRN}|PY00001"},
    json=body,
    headers={"Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"},
    timeout=30,
)
assert response.status_code == 200, response.text
assert client.reference("Patient", fresh.id).to_resource()["gender"] == "other"

# A transaction through fhirpy's execute.
other = dict(body)
other.pop("id")
other["identifier"] = [{"system": MRN, "value": "PY00002"}]
bundle = client.execute(
    "",
    method="post",
    data={
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": other, "request": {"method": "POST", "url": "Patient"}}],
    },
)
assert bundle["entry"][0]["response"]["status"] == "201 Created", bundle
print(f"fhirpy: ok ({len(ids)} patients)")
