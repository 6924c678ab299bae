"""POSTs every resource of NDJSON files to a FHIR base, N at a time (keep-alive connections),
and prints how many and how fast: the baseline the gateway's push is compared with."""
import http.client
import json
import sys
import threading
import time
import urllib.parse

base, concurrency, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
resources = [line for f in files for line in open(f) if line.strip()]
url = urllib.parse.urlparse(base)
lock = threading.Lock()
next_index = 0
failed = 0


def worker():
    global next_index, failed
    conn = http.client.HTTPConnection(url.hostname, url.port)
    while True:
        with lock:
            if next_index >= len(resources):
                return
            body = resources[next_index]
            next_index += 1
        kind = json.loads(body)["resourceType"]
        conn.request("POST", f"{url.path}/{kind}", body=body,
                     headers={"content-type": "application/fhir+json"})
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            with lock:
                failed += 1


start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seconds = time.monotonic() - start
print(f"direct: {len(resources)} resources in {seconds:.1f} s "
      f"({len(resources) / seconds:.0f}/s), {failed} not created")
