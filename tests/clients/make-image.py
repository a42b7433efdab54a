#!/usr/bin/env python3
"""Write a small single-arch (linux/amd64) OCI image layout for the real-client tests. Stdlib only.

usage: make-image.py OUTDIR [--layers N] [--layer-kib K] [--seed S]

OUTDIR gets:
  oci-layout, index.json, blobs/sha256/...  an OCI image layout; its one manifest is tagged "v1"
                                            (annotation org.opencontainers.image.ref.name), so skopeo
                                            reads it as oci:OUTDIR:v1
  expected.json                             {"manifest": "sha256:..", "config": "sha256:..",
                                             "layers": ["sha256:..", ...]}
  artifact.txt                              random text, for the ORAS artifact round trip

Each layer is a gzip'd tar holding one file of K KiB of random bytes. Everything is a pure function of
the seed (tar and gzip headers carry no timestamps), so a fixed --seed reproduces the same digests; the
default seed is random, so every run pushes blobs the registry has never seen and real uploads happen.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = "1970-01-01T00:00:00Z"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(index, payload):
    """An uncompressed tar with a directory and one file, fixed metadata (mtime 0, root-owned)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("regbridge")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        f = tarfile.TarInfo("regbridge/layer-%d.bin" % index)
        f.size, f.mode = len(payload), 0o644
        tar.addfile(f, io.BytesIO(payload))
    return buf.getvalue()


def gzip_bytes(data):
    """gzip with mtime 0 and no file name in the header, so the output depends on the input only."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


class Layout:
    def __init__(self, outdir):
        self.outdir = outdir
        self.blobdir = os.path.join(outdir, "blobs", "sha256")
        os.makedirs(self.blobdir, exist_ok=True)

    def blob(self, data, media_type):
        """Store a blob, return its descriptor."""
        digest = sha256(data)
        with open(os.path.join(self.blobdir, digest.split(":", 1)[1]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def write_json(self, name, obj):
        with open(os.path.join(self.outdir, name), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--layers", type=int, default=2, help="number of layers (default 2)")
    ap.add_argument("--layer-kib", type=int, default=256, help="random payload per layer in KiB (default 256)")
    ap.add_argument("--seed", default=None, help="seed for the random content (default: random)")
    a = ap.parse_args()
    if a.layers < 1 or a.layer_kib < 0:
        ap.error("--layers must be >= 1 and --layer-kib >= 0")
    seed = a.seed if a.seed is not None else os.urandom(16).hex()
    rng = random.Random(seed)

    out = Layout(a.outdir)
    layers, diff_ids, history = [], [], []
    for i in range(a.layers):
        tar = make_tar(i, rng.randbytes(a.layer_kib * 1024))
        diff_ids.append(sha256(tar))
        layers.append(out.blob(gzip_bytes(tar), OCI_LAYER_GZIP))
        history.append({"created": EPOCH, "created_by": "make-image.py layer %d" % i})

    config = {
        "created": EPOCH,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Labels": {"org.regbridge.test.seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_desc = out.blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)

    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layers}
    manifest_desc = out.blob(json.dumps(manifest, indent=2).encode(), OCI_MANIFEST)
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": "v1"}

    with open(os.path.join(a.outdir, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}\n')
    out.write_json("index.json", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [manifest_desc]})
    out.write_json("expected.json", {"manifest": manifest_desc["digest"], "config": config_desc["digest"],
                                     "layers": [l["digest"] for l in layers]})
    with open(os.path.join(a.outdir, "artifact.txt"), "w") as f:
        for _ in range(64):
            f.write("".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(72)) + "\n")
    print("%s: manifest %s, %d layer(s) of %d KiB, seed %s"
          % (a.outdir, manifest_desc["digest"], a.layers, a.layer_kib, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
