#!/usr/bin/env python3
"""make-image.py OUTDIR MIB [--tag TAG] [--layer tar|gzip]

Writes, offline and with the python3 standard library only, an OCI image layout in OUTDIR holding one
single-layer image tagged TAG (default "v1", the org.opencontainers.image.ref.name annotation in
index.json), so that `skopeo copy oci:OUTDIR:TAG docker://...` can push it.

The layer is a tar with one file of MIB MiB of fresh random bytes (from os.urandom, so every call gives new
digests and a push really uploads). It is streamed to disk and hashed on the fly, so memory stays small.

  --layer tar   media type application/vnd.oci.image.layer.v1.tar (uncompressed).
  --layer gzip  media type application/vnd.oci.image.layer.v1.tar+gzip, gzip with *stored* (level 0)
                deflate blocks: a valid gzip stream that costs no CPU to make and is only ~0.01% larger
                than the tar. Use this for benchmarks: skopeo gzips uncompressed layers itself when it
                pushes to a registry, which would make the client's compressor the bottleneck.
(default: gzip)

Prints one JSON line: {"tag", "manifest": {digest,size}, "config": {...}, "layer": {digest,size,diff_id}}.
"""
import hashlib
import json
import os
import sys
import tarfile
import zlib

MiB = 1 << 20
CHUNK = 4 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
CREATED = "2023-11-14T22:13:20Z"
EPOCH = 1700000000


def usage():
    sys.stderr.write(__doc__.split("\n\n")[0] + "\n")
    sys.exit(2)


def parse_args(argv):
    pos, tag, layer = [], "v1", "gzip"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--tag" and i + 1 < len(argv):
            tag = argv[i + 1]
            i += 2
        elif a == "--layer" and i + 1 < len(argv) and argv[i + 1] in ("tar", "gzip"):
            layer = argv[i + 1]
            i += 2
        elif a in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        elif a.startswith("--"):
            usage()
        else:
            pos.append(a)
            i += 1
    if len(pos) != 2:
        usage()
    try:
        mib = float(pos[1])
    except ValueError:
        usage()
    if mib < 0:
        usage()
    return pos[0], int(mib * MiB), tag, layer


class HashingWriter:
    """Writes to a file while hashing what is written."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b):
        if b:
            self.f.write(b)
            self.h.update(b)
            self.n += len(b)

    def close(self):
        self.f.close()
        return "sha256:" + self.h.hexdigest(), self.n


def put_blob(blobdir, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobdir, d[7:]), "wb") as f:
        f.write(data)
    return {"digest": d, "size": len(data)}


def write_layer(blobdir, nbytes, layer):
    """Streams a tar (one regular file of nbytes random bytes) into blobdir; returns (descriptor, diff_id)."""
    tmp = os.path.join(blobdir, ".layer.tmp")
    out = HashingWriter(tmp)          # the blob as stored (tar, or gzip of the tar)
    tar_hash = hashlib.sha256()       # the uncompressed tar: the diff_id
    comp = zlib.compressobj(0, zlib.DEFLATED, 31) if layer == "gzip" else None  # wbits 31 = gzip wrapper

    def emit(b):
        tar_hash.update(b)
        out.write(comp.compress(b) if comp else b)

    ti = tarfile.TarInfo("bench/random.bin")
    ti.size = nbytes
    ti.mode = 0o644
    ti.mtime = EPOCH
    ti.uname = ti.gname = "root"
    d = tarfile.TarInfo("bench")
    d.type = tarfile.DIRTYPE
    d.mode = 0o755
    d.mtime = EPOCH
    written = 0
    emit(d.tobuf(format=tarfile.USTAR_FORMAT))
    hdr = ti.tobuf(format=tarfile.USTAR_FORMAT if nbytes < 8 ** 11 else tarfile.PAX_FORMAT)
    emit(hdr)
    written += len(hdr) + 512
    left = nbytes
    while left > 0:
        n = min(CHUNK, left)
        emit(os.urandom(n))
        left -= n
    written += nbytes
    pad = (-nbytes) % 512
    written += pad
    end = pad + 1024                   # two zero blocks end the archive ...
    end += (-(written + 1024)) % tarfile.RECORDSIZE  # ... padded to a full record, like tarfile does
    emit(b"\0" * end)
    if comp:
        out.write(comp.flush())
    digest, size = out.close()
    os.replace(tmp, os.path.join(blobdir, digest[7:]))
    mt = OCI_LAYER_GZ if comp else OCI_LAYER_TAR
    return {"mediaType": mt, "digest": digest, "size": size}, "sha256:" + tar_hash.hexdigest()


def main():
    out, nbytes, tag, layer = parse_args(sys.argv[1:])
    blobdir = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobdir, exist_ok=True)
    ldesc, diff_id = write_layer(blobdir, nbytes, layer)
    cfg = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Labels": {"regbridge.bench": "1"}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "regbridge bench/make-image.py"}],
    }
    cdesc = put_blob(blobdir, json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode())
    cdesc = {"mediaType": OCI_CONFIG, **cdesc}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": [ldesc]}
    mdesc = put_blob(blobdir, json.dumps(manifest, indent=2).encode())
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, **mdesc,
                            "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    # index.json may already list other images (a second call with another tag): keep them, replace this tag.
    ipath = os.path.join(out, "index.json")
    if os.path.exists(ipath):
        with open(ipath) as f:
            old = json.load(f)
        keep = [m for m in old.get("manifests", [])
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        index["manifests"] = keep + index["manifests"]
    with open(ipath + ".tmp", "w") as f:
        json.dump(index, f, indent=2)
    os.replace(ipath + ".tmp", ipath)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(json.dumps({"tag": tag, "manifest": mdesc, "config": cdesc,
                      "layer": {**ldesc, "diff_id": diff_id}}))


if __name__ == "__main__":
    main()
