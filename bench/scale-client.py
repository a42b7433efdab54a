#!/usr/bin/env python3
"""scale-client.py BASE USER:PASSWORD fill|time ... -- the HTTP side of bench/scale.sh (stdlib only).

  fill REPOS FROM TO      pushes the manifest of an empty OCI index by tag `v1` into repositories
                          REPOS/r000000 .. (numbers FROM..TO-1): one PUT each, which creates the repository
  tags REPO FROM TO       pushes the same manifest into REPO under tags t000000 .. (numbers FROM..TO-1)
  time RUNS PATH...       GETs each PATH RUNS times on one kept-alive connection (after one untimed GET)
                          and prints "PATH<TAB>median ms<TAB>entries" (entries: repositories or tags listed)

Pushes run on a few connections in parallel. Every answer is checked; anything unexpected stops the run.
Loopback only.
"""
import base64
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

INDEX = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONNECTIONS = 4

base, cred, command, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
url = urllib.parse.urlsplit(base)
auth = "Basic " + base64.b64encode(cred.encode()).decode()


def connect():
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)


def request(conn, method, path, body=None, headers=None):
    h = {"Authorization": auth}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    return r.status, r.read(), r


def push_all(paths):
    """PUTs the index to every manifest path, CONNECTIONS at a time."""
    failures = []
    chunks = [paths[i::CONNECTIONS] for i in range(CONNECTIONS)]

    def worker(chunk):
        conn = connect()
        for path in chunk:
            if failures:
                return
            status, body, _ = request(conn, "PUT", path, INDEX, {"Content-Type": INDEX_TYPE})
            if status != 201:
                failures.append(f"PUT {path}: {status} {body[:300]!r}")
                return

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"scale-client: {failures[0]}")
    elapsed = time.monotonic() - started
    print(f"pushed {len(paths)} manifests in {elapsed:.1f} s ({len(paths) / max(elapsed, 1e-9):.0f}/s)", file=sys.stderr)


def timed(runs, paths):
    conn = connect()
    for path in paths:
        headers = {"Accept": INDEX_TYPE}
        status, body, _ = request(conn, "GET", path, headers=headers)
        if status != 200:
            sys.exit(f"scale-client: GET {path}: {status} {body[:300]!r}")
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            status, body, _ = request(conn, "GET", path, headers=headers)
            samples.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                sys.exit(f"scale-client: GET {path}: {status}")
        doc = json.loads(body)
        listed = doc.get("repositories", doc.get("tags"))
        entries = "-" if listed is None else len(listed)
        print(f"{path}\t{statistics.median(samples):.2f}\t{entries}")


if command == "fill":
    prefix, lo, hi = args[0], int(args[1]), int(args[2])
    push_all([f"/v2/{prefix}/r{i:06d}/manifests/v1" for i in range(lo, hi)])
elif command == "tags":
    repo, lo, hi = args[0], int(args[1]), int(args[2])
    push_all([f"/v2/{repo}/manifests/t{i:06d}" for i in range(lo, hi)])
elif command == "time":
    timed(int(args[0]), args[1:])
else:
    sys.exit(__doc__)
