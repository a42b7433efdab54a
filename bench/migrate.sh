#!/usr/bin/env bash
# bench/migrate.sh -- `regbridge migrate` from local disk into S3 (moto): time and peak memory.
#
# A benchmark, not a test: it prints numbers. A regbridge server on local disk gets one BENCH_BIG_MIB blob and
# BENCH_SMALL blobs of 1 MiB (random bytes, POST ?digest=); the server is stopped, moto is started, and
# `regbridge migrate --to s3://bench/registry` runs twice under /usr/bin/time: the copy, then the rerun that
# finds everything there. Peak RSS far below the big blob's size shows the bytes are streamed.
#
# Environment: REGBRIDGE_BIN (default target/release/regbridge), BENCH_BIG_MIB (200), BENCH_SMALL (20),
# BENCH_DIR (/tmp/regbridge-bench-migrate), REGBRIDGE_TEST_VENV (/tmp/regbridge-test-venv, holding moto_server).
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SELF=migrate.sh
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

W=${BENCH_DIR:-/tmp/regbridge-bench-migrate}
RB_BIN=${REGBRIDGE_BIN:-target/release/regbridge}
VENV=${REGBRIDGE_TEST_VENV:-/tmp/regbridge-test-venv}
BIG=${BENCH_BIG_MIB:-200}
SMALL=${BENCH_SMALL:-20}
find_regbridge "$RB_BIN"
[ -x "$VENV/bin/moto_server" ] || die "moto_server not found in $VENV: run scripts/install-test-deps.sh"
[ -x /usr/bin/time ] || die "/usr/bin/time not found: apt-get install time"
rm -rf "$W" && mkdir -p "$W/blobs"
PASS=$(random_hex 12)
PORT=$(free_port)
SERVE=""; MOTO=""
trap '[ -n "$SERVE" ] && stop_pid "$SERVE"; [ -n "$MOTO" ] && stop_pid "$MOTO"' EXIT

REGBRIDGE_ADMIN_PASSWORD=$PASS "$RB_BIN" serve --data-dir "$W/data" --listen "127.0.0.1:$PORT" > "$W/serve.log" 2>&1 &
SERVE=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
head -c $((BIG << 20)) /dev/urandom > "$W/blobs/big"
for i in $(seq "$SMALL"); do head -c $((1 << 20)) /dev/urandom > "$W/blobs/small$i"; done
for f in "$W"/blobs/*; do
    d=sha256:$(sha256sum "$f" | cut -d' ' -f1)
    curl -sf -o /dev/null -u "admin:$PASS" -X POST -H 'Content-Type: application/octet-stream' \
        --data-binary @"$f" "http://127.0.0.1:$PORT/v2/bench/app/blobs/uploads/?digest=$d" || die "push $f"
done
stop_pid "$SERVE"; SERVE=""

MOTO_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "$W/moto.log" 2>&1 &
MOTO=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break; sleep 0.1; done
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$MOTO_PORT/bench" || die "could not create the bucket in moto"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
for run in copy rerun; do
    /usr/bin/time -f '%e %M' -o "$W/$run.time" "$RB_BIN" migrate --data-dir "$W/data" --to s3://bench/registry \
        --to-endpoint "http://127.0.0.1:$MOTO_PORT" --to-allow-http --to-region us-east-1 \
        > "$W/$run.json" 2> "$W/$run.err" || { cat "$W/$run.err" >&2; die "migrate ($run) failed"; }
    read -r secs kib < "$W/$run.time"
    copied=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["blobs"]["copied"], r["bytes"]["copied"])' "$W/$run.json")
    echo "$run: ${secs}s, peak RSS $((kib / 1024)) MiB, blobs and bytes copied: $copied"
done
