"""Loads an `iop-gateway export` folder into a peer FHIR server, keeping every resource's id:
batch Bundles of PUT entries, several in flight. Usage: load_peer.py BASE_URL EXPORT_DIR.
Prints how many resources the peer accepted; exits 1 if any entry failed."""

import concurrent.futures
import glob
import json
import os
import sys
import urllib.request

BATCH = 500
IN_FLIGHT = 4


def batches(export_dir):
    entries = []
    for path in sorted(glob.glob(os.path.join(export_dir, "*.ndjson"))):
        with open(path) as lines:
            for line in lines:
                if not line.strip():
                    continue
                resource = json.loads(line)
                entries.append({
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
                })
                if len(entries) == BATCH:
                    yield entries
                    entries = []
    if entries:
        yield entries


def post(base, entries):
    body = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()
    request = urllib.request.Request(base.rstrip("/") + "/", data=body, method="POST", headers={
        "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.load(response)
    failed = [e["response"]["status"] for e in answer.get("entry", [])
              if not e.get("response", {}).get("status", "").startswith(("200", "201"))]
    return len(entries) - len(failed), len(failed), failed[:3]


def main():
    base, export_dir = sys.argv[1], sys.argv[2]
    accepted, refused, samples = 0, 0, []
    with concurrent.futures.ThreadPoolExecutor(IN_FLIGHT) as pool:
        for ok, failed, some in pool.map(lambda b: post(base, b), batches(export_dir)):
            accepted += ok
            refused += failed
            samples += some
    print(f"loaded {accepted} resources")
    if refused:
        print(f"{refused} entries refused, e.g. {samples[:3]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
