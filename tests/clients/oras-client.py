#!/usr/bin/env python3
"""ORAS round trip with oras-py 0.2.43: push FILE as an artifact, pull it back, compare the bytes.

usage: oras-client.py HOST:PORT REPO TAG FILE OUTDIR      (run it with the venv's python)
env:   ORAS_USER, ORAS_PASS   credentials (optional)

Plain HTTP only (insecure=True, TLS not verified): the test registry runs on 127.0.0.1 without TLS.

oras-py 0.2.43 has no `artifactType` manifest field; it sets the artifact type the image-spec 1.0 way,
as the config blob's media type (image-spec 1.1 reads config.mediaType as the artifact type when
artifactType is absent). The file goes up as one layer with media type text/plain and a title annotation,
which is what `pull` uses as the file name.

oras-py reads and writes ~/.docker/config.json (it ignores DOCKER_CONFIG), so HOME is pointed at a fresh
temporary directory before oras is imported: the host's stored credentials are never read or changed.
"""
import filecmp
import json
import os
import shutil
import sys
import tempfile

ARTIFACT_TYPE = "application/vnd.regbridge.test.artifact.v1+json"
LAYER_TYPE = "text/plain"


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) != 6:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    reg, repo, tag, path, outdir = sys.argv[1:]
    home = tempfile.mkdtemp(prefix="oras-home.")
    os.environ["HOME"] = home
    import oras.client  # noqa: E402  (after HOME is set, see docstring)
    import requests

    # oras-py needs the auth backend chosen up front: "basic" for a Basic challenge, else "token".
    challenge = requests.get("http://%s/v2/" % reg, timeout=30).headers.get("WWW-Authenticate", "")
    backend = "basic" if challenge.lower().startswith("basic") else "token"
    client = oras.client.OrasClient(hostname=reg, insecure=True, tls_verify=False, auth_backend=backend)
    user, password = os.environ.get("ORAS_USER"), os.environ.get("ORAS_PASS")
    if user:
        # Only stores the credentials (it sends no request); a wrong password shows up on push.
        client.login(hostname=reg, username=user, password=password, tls_verify=False,
                     config_path=os.path.join(home, "docker-config.json"))
    print("oras-py %s, auth backend %s" % (client.version(return_items=True)["Version"], backend))

    # push() wants paths relative to the working directory (it records the base name as the title).
    src_dir, name = os.path.split(os.path.abspath(path))
    config = os.path.join(home, "artifact-config.json")
    with open(config, "w") as f:
        json.dump({"regbridge": "client test"}, f)
    target = "%s/%s:%s" % (reg, repo, tag)
    cwd = os.getcwd()
    os.chdir(src_dir)
    try:
        resp = client.push(target=target, files=["%s:%s" % (name, LAYER_TYPE)],
                           manifest_config="%s:%s" % (config, ARTIFACT_TYPE), quiet=True)
    finally:
        os.chdir(cwd)
    if resp.status_code not in (200, 201):
        fail("push %s: HTTP %s %s" % (target, resp.status_code, resp.text[:300]))
    print("pushed %s -> %s" % (target, resp.headers.get("Docker-Content-Digest")))

    manifest = client.get_manifest(target)
    got_type = manifest.get("config", {}).get("mediaType")
    if got_type != ARTIFACT_TYPE:
        fail("artifact type (config.mediaType) is %r, want %r" % (got_type, ARTIFACT_TYPE))
    layers = manifest.get("layers", [])
    if len(layers) != 1 or layers[0].get("mediaType") != LAYER_TYPE:
        fail("manifest layers %s, want one %s layer" % (layers, LAYER_TYPE))

    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    client.pull(target=target, outdir=outdir)
    pulled = os.path.join(outdir, name)
    if not os.path.exists(pulled):
        fail("pull: %s missing (outdir has %s)" % (pulled, os.listdir(outdir)))
    if not filecmp.cmp(path, pulled, shallow=False):
        fail("pull: %s differs from %s" % (pulled, path))
    print("pulled %s: same bytes; artifact type %s" % (name, got_type))
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
