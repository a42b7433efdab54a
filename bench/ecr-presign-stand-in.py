#!/usr/bin/env python3
"""ecr-presign-stand-in.py PORT MOTO_URL PRESIGNED_URL -- moto with ECR's GetDownloadUrlForLayer added.

moto does not implement GetDownloadUrlForLayer. This stand-in answers that one ECR call with PRESIGNED_URL and
passes every other request to moto unchanged, so regbridge's ECR route can be benchmarked on its 307 path.
Loopback only; stdlib only.
"""
import http.server
import json
import sys
import urllib.error
import urllib.request

PORT, MOTO, PRESIGNED = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the benchmark reads the servers' numbers, not this log
        pass

    def _send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("X-Amz-Target", "").endswith("GetDownloadUrlForLayer"):
            digest = json.loads(body or b"{}").get("layerDigest", "")
            answer = json.dumps({"downloadUrl": PRESIGNED, "layerDigest": digest}).encode()
            return self._send(200, [("Content-Type", "application/x-amz-json-1.1")], answer)
        request = urllib.request.Request(MOTO + self.path, data=body or None, method=self.command)
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length"):
                request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return self._send(r.status, r.getheaders(), r.read())
        except urllib.error.HTTPError as e:
            return self._send(e.code, e.headers.items(), e.read())

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
