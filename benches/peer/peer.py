"""Side by side: iop-gateway (SMART token, consent gate and audit on) and the Helios FHIR server
(hfs, as it comes) on the same data, the same load generator and the same machine.

Called by benches/peer/run.sh, which builds both. Steps:
  1. seed a clinic (SQLite), register an API client acting for an outside organization, export
     every resource and load the export into hfs (same ids);
  2. pick random patients the client may see (through the gateway's own API);
  3. ROUNDS alternating rounds of `wrk -t2 -c16` over those patients, per server: a read
     (`GET Patient/{id}`) and a search (`GET CarePlan?patient={id}`); each server's CPU time
     per request from /proc;
  4. with oha installed, fixed-rate runs (reads at 2,000/s, searches at 500/s) for latency;
  5. the same gateway runs on PostgreSQL when PG_URL names an empty (or earlier peer) database;
  6. a Markdown table: medians with (min-max) over the rounds, database sizes, peak RSS.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GATEWAY = os.environ.get("GATEWAY", os.path.join(REPO, "target", "release", "iop-gateway"))
HFS = os.environ["HFS"]
WORK = os.environ.get("WORK", os.path.join(REPO, "target", "peer"))
CLIENTS = int(os.environ.get("CLIENTS", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = os.environ.get("DURATION", "15s")
PG_URL = os.environ.get("PG_URL", "")
PATIENTS = 2000
CLIENT_NAME = "peer-bench"
SCOPES = "system/Patient.rs system/CarePlan.rs"
TICKS = os.sysconf("SC_CLK_TCK")
KINDS = {
    "read": ("/Patient/{id}", 2000),
    "search": ("/CarePlan?patient={id}", 500),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_cli(db_url, *args, stdin=None):
    env = dict(os.environ, IOP_LOG="warn")
    return subprocess.run([GATEWAY, "--database-url", db_url, *args], check=True, text=True,
                          capture_output=True, env=env, input=stdin).stdout


def wait_until_up(url, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {seconds} s")


def get_json(url, token=None):
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return json.load(r)


class Server:
    """One running server process: its base URL, how to authorize, its CPU time and memory."""

    def __init__(self, name, argv, base, ready, env=None, log=None):
        self.name, self.base = name, base
        self.token = None
        self.process = subprocess.Popen(argv, env=env, stdout=log or subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_until_up(ready)

    def cpu_seconds(self):
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def peak_rss_mb(self):
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def headers(self):
        return ["-H", f"Authorization: Bearer {self.token}"] if self.token else []

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def start_gateway(db_url, label):
    port = free_port()
    log = open(os.path.join(WORK, f"{label}.log"), "w")
    env = dict(os.environ, IOP_LOG="warn")
    server = Server(label, [GATEWAY, "--database-url", db_url, "serve", "--no-console",
                            "--listen", f"127.0.0.1:{port}",
                            # One client drives all the load: its per-client rate limit (100/s by
                            # default) is lifted, as a clinic would for a bulk consumer.
                            "--rate-limit", "1000000", "--rate-burst", "1000000"],
                    f"http://127.0.0.1:{port}/fhir", f"http://127.0.0.1:{port}/readyz", env, log)
    server.db_url = db_url
    server.refresh_token = lambda: setattr(
        server, "token", gateway_cli(db_url, "token", "--client", CLIENT_NAME).strip().splitlines()[-1])
    server.refresh_token()
    return server


def start_hfs(db_path):
    port = free_port()
    log = open(os.path.join(WORK, "hfs.log"), "w")
    env = dict(os.environ, HFS_LOG_LEVEL="warn", HFS_BASE_URL=f"http://127.0.0.1:{port}")
    server = Server("hfs", [HFS, "--port", str(port), "--database-url", db_path,
                            "--data-dir", os.environ["HFS_DATA"]],
                    f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/health", env, log)
    server.refresh_token = lambda: None
    return server


def recipient_organization(export_dir):
    """The outside organization that clients' consents most often name as recipient: the API
    client acts for it, so the gate decides every request (allowed by a consent or withheld)."""
    counts = {}
    with open(os.path.join(export_dir, "Consent.ndjson")) as lines:
        for line in lines:
            for actor in json.loads(line).get("provision", {}).get("actor", []):
                ref = actor.get("reference", {}).get("reference", "")
                if ref.startswith("Organization/"):
                    counts[ref[len("Organization/"):]] = counts.get(ref[len("Organization/"):], 0) + 1
    return max(counts, key=counts.get)


def prepare_clinic(db_url, export_dir=None):
    """Seeds the clinic and registers the bench client (both only once per database)."""
    gateway_cli(db_url, "seed", "--clients", str(CLIENTS), "--seed", "7", "--as-of", "2026-11-02")
    if export_dir and not os.path.exists(os.path.join(export_dir, "Patient.ndjson")):
        gateway_cli(db_url, "export", "--out", export_dir)
    organization = recipient_organization(os.path.join(WORK, "export"))
    if CLIENT_NAME not in gateway_cli(db_url, "clients", "list"):
        gateway_cli(db_url, "clients", "add", CLIENT_NAME, "--jwks",
                    os.path.join(REPO, "fixtures", "auth", "client.jwks.json"),
                    "--scope", SCOPES, "--organization", organization)
    return organization


def visible_patients(server):
    """Patients the gateway's bench client may see, through the API itself."""
    ids, url = [], f"{server.base}/Patient?_count=1000&_elements=id"
    while url:
        bundle = get_json(url, server.token)
        ids += [e["resource"]["id"] for e in bundle.get("entry", [])
                if e["resource"]["resourceType"] == "Patient"]  # not the OperationOutcome of what was withheld
        url = next((l["url"] for l in bundle.get("link", []) if l["relation"] == "next"), None)
    random.seed(1)
    return random.sample(ids, min(PATIENTS, len(ids)))


def found_by_search(server, ids):
    """The CarePlan ids each of the first 20 patients' searches finds."""
    found = []
    for patient in ids[:20]:
        bundle = get_json(server.base + KINDS["search"][0].format(id=patient), server.token)
        found.append(sorted(e["resource"]["id"] for e in bundle.get("entry", [])
                            if e["resource"]["resourceType"] == "CarePlan"))
    return found


def wrk(server, kind, ids_file):
    template = KINDS[kind][0]
    prefix = urllib.parse.urlsplit(server.base).path  # "/fhir" for the gateway, "" for hfs
    env = dict(os.environ, IDS_FILE=ids_file, PATH_TEMPLATE=prefix + template)
    before = server.cpu_seconds()
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{DURATION}", "-s",
                          os.path.join(REPO, "benches", "load", "random-path.lua"),
                           *server.headers(), server.base[: len(server.base) - len(prefix)]],
                         env=env, check=True, text=True, capture_output=True).stdout
    used = server.cpu_seconds() - before
    line = out.strip().splitlines()[-1]
    m = re.search(r"requests/s (\d+), errors (\d+), p50 ([\d.]+) ms, p90 ([\d.]+) ms, p99 ([\d.]+) ms",
                  line)
    if not m:
        sys.exit(f"wrk said: {out}")
    rate, errors, p99 = float(m[1]), int(m[2]), float(m[5])
    seconds = float(DURATION.rstrip("s"))
    return {"rate": rate, "errors": errors, "p99": p99, "cpu_ms": 1000 * used / (rate * seconds)}


def oha(server, kind, ids):
    """Latency at a fixed request rate, over the same random patients."""
    if not shutil.which("oha"):
        return None
    template, rate = KINDS[kind]
    urls = os.path.join(WORK, f"urls-{server.name}-{kind}.txt")
    with open(urls, "w") as f:
        f.write("\n".join(server.base + template.format(id=i) for i in ids) + "\n")
    # --latency-correction: latency from when each request was due, not when it was sent.
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-z", DURATION, "-q", str(rate),
                          "-c", "32", "--latency-correction", "--urls-from-file", *server.headers(), urls],
                         check=True, text=True, capture_output=True).stdout
    report = json.loads(out)
    codes = report.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    return {"rate": report["summary"]["requestsPerSec"], "p99": 1000 * report["latencyPercentiles"]["p99"],
            "p50": 1000 * report["latencyPercentiles"]["p50"], "non_2xx": sum(codes.values()) - ok}


def size_mb(*paths):
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p)) / 1e6


def pg_size_mb(db_url):
    name = db_url.rsplit("/", 1)[1].split("?")[0]
    out = subprocess.run(["psql", db_url, "-tAc", f"SELECT pg_database_size('{name}')"],
                         check=True, text=True, capture_output=True).stdout
    return int(out.strip()) / 1e6


def spread(values, fmt="{:,.0f}"):
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main():
    os.makedirs(WORK, exist_ok=True)
    # Seeded once; each run starts from a copy, so its audit trail holds this run's requests only.
    seeded_db = os.path.join(WORK, "clinic-seeded.db")
    export_dir = os.path.join(WORK, "export")
    organization = prepare_clinic(f"sqlite://{seeded_db}", export_dir)
    sqlite_db = os.path.join(WORK, "clinic.db")
    sqlite_url = f"sqlite://{sqlite_db}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(sqlite_db + suffix):
            os.remove(sqlite_db + suffix)
    with sqlite3.connect(seeded_db) as source, sqlite3.connect(sqlite_db) as copy:
        source.backup(copy)
    exported = sum(sum(1 for _ in open(os.path.join(export_dir, f)))
                   for f in os.listdir(export_dir) if f.endswith(".ndjson"))
    print(f"clinic: {CLIENTS} clients, {exported} resources exported; client acts for Organization/{organization}")

    hfs_db = os.path.join(WORK, "hfs.db")
    fresh_hfs = not os.path.exists(hfs_db)
    hfs = start_hfs(hfs_db)
    if fresh_hfs:
        started = time.time()
        subprocess.run([sys.executable, os.path.join(HERE, "load_peer.py"), hfs.base, export_dir], check=True)
        print(f"hfs: loaded in {time.time() - started:.0f} s")
    gateway = start_gateway(sqlite_url, "gateway-sqlite")
    servers = [gateway, hfs]
    sizes_before = {"gateway-sqlite": size_mb(sqlite_db, sqlite_db + "-wal"),
                    "hfs": size_mb(hfs_db, hfs_db + "-wal")}

    ids = visible_patients(gateway)
    ids_file = os.path.join(WORK, "ids.txt")
    open(ids_file, "w").write("\n".join(ids) + "\n")
    # Both must answer the same question: the same CarePlans for the same patients.
    ours, theirs = found_by_search(gateway, ids), found_by_search(hfs, ids)
    if ours != theirs:
        sys.exit(f"the servers find different CarePlans for the same patients: {ours[:2]} vs {theirs[:2]}")
    print(f"{len(ids)} random patients the client may see; both find the same CarePlans, "
          f"{sum(map(len, ours)) / len(ours):.2f} per search")

    pg = None
    if PG_URL:
        prepare_clinic(PG_URL)
        pg = start_gateway(PG_URL, "gateway-postgresql")
        servers.append(pg)
        sizes_before[pg.name] = pg_size_mb(PG_URL)

    results = {s.name: {k: [] for k in KINDS} for s in servers}
    for round_ in range(ROUNDS):
        order = servers if round_ % 2 == 0 else list(reversed(servers))
        for server in order:
            server.refresh_token()
            for kind in KINDS:
                r = wrk(server, kind, ids_file)
                results[server.name][kind].append(r)
                print(f"round {round_ + 1} {server.name} {kind}: {r['rate']:,.0f}/s p99 {r['p99']:.1f} ms "
                      f"cpu {r['cpu_ms']:.3f} ms/request errors {r['errors']}", flush=True)
    fixed = {}
    for server in servers:
        server.refresh_token()
        for kind in KINDS:
            fixed[(server.name, kind)] = oha(server, kind, ids)

    sizes = {"gateway-sqlite": size_mb(sqlite_db, sqlite_db + "-wal"),
             "hfs": size_mb(hfs_db, hfs_db + "-wal")}
    if pg:
        sizes[pg.name] = pg_size_mb(PG_URL)
    rss = {s.name: s.peak_rss_mb() for s in servers}
    for s in servers:
        s.stop()
    report(servers, results, fixed, sizes_before, sizes, rss)


def report(servers, results, fixed, sizes_before, sizes, rss):
    names = [s.name for s in servers]
    g, h = results["gateway-sqlite"], results["hfs"]
    print()
    header = "| | iop-gateway (SQLite) | hfs | ratio |" + (" iop-gateway (PostgreSQL) |" if len(names) > 2 else "")
    print(header)
    print("| --- " * (header.count("|") - 1) + "|")
    for kind, label in (("read", "`GET Patient/{id}`, wrk -c16"), ("search", "`GET CarePlan?patient=`, wrk -c16")):
        cells = []
        for name in names:
            runs = results[name][kind]
            cells.append(f"{spread([r['rate'] for r in runs])}/s, p99 {spread([r['p99'] for r in runs], '{:.1f}')} ms"
                         + (f", {sum(r['errors'] for r in runs)} errors" if any(r['errors'] for r in runs) else ""))
        ratio = statistics.median([a["rate"] / b["rate"] for a, b in zip(g[kind], h[kind])])
        row = [label, cells[0], cells[1], f"{ratio:.2f}x"] + cells[2:]
        print("| " + " | ".join(row) + " |")
    cpu = [" / ".join(f"{statistics.median(r['cpu_ms'] for r in results[n][k]):.2f} ms" for k in KINDS) for n in names]
    print("| " + " | ".join(["server CPU per read / per search", cpu[0], cpu[1], ""] + cpu[2:]) + " |")
    for kind in KINDS:
        if all(fixed[(n, kind)] is None for n in names):
            continue
        rate = KINDS[kind][1]
        cells = []
        for n in names:
            f = fixed[(n, kind)]
            cells.append("—" if f is None else f"p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms"
                         + (f", {f['non_2xx']} non-2xx" if f["non_2xx"] else ""))
        print("| " + " | ".join([f"{kind} at {rate:,}/s (oha)", cells[0], cells[1], ""] + cells[2:]) + " |")
    db = [f"{sizes_before[n]:,.0f} MB" for n in names]
    ratio = sizes_before["hfs"] / sizes_before["gateway-sqlite"]
    print("| " + " | ".join(["database size, loaded", db[0], db[1], f"{ratio:.1f}x smaller"] + db[2:]) + " |")
    db = [f"{sizes[n]:,.0f} MB" for n in names]
    ratio = sizes["hfs"] / sizes["gateway-sqlite"]
    print("| " + " | ".join(["database size after the runs (the gateway's with its audit trail)", db[0], db[1],
                             f"{ratio:.1f}x smaller"] + db[2:]) + " |")
    mem = [f"{rss[n]:,.0f} MB" for n in names]
    print("| " + " | ".join(["peak RSS (VmHWM)", mem[0], mem[1], ""] + mem[2:]) + " |")


if __name__ == "__main__":
    main()
