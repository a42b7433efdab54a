#!/usr/bin/env bash
# bench/compare.sh -- benchmark regbridge against Debian's docker-registry (CNCF distribution 2.8) on this machine.
#
# This is a benchmark, not a test: it prints numbers, it does not pass or fail on them (it does stop if a server
# answers a request wrongly, because then the numbers would mean nothing).
#
# Both servers run at the same time on 127.0.0.1 (free ports), each with HTTP Basic auth (user "admin", one
# random password): regbridge from REGBRIDGE_BIN with a fresh --data-dir, docker-registry with a generated
# config.yml (filesystem storage, deletes enabled, bcrypt htpasswd, log level warn, access log off).
# Measurements are interleaved (run i measures both servers before run i+1, and the order alternates every run)
# so that both see the same machine state; `sync` runs before every timed step.
#   1. monolithic blob upload with curl: POST /v2/<name>/blobs/uploads/ + PUT <location>&digest= streaming a
#      fresh random file with -T (MiB/s, median of BENCH_RUNS; a new blob and a new repository every run)
#   2. download of that blob with curl -L to /dev/null (MiB/s, median); run 1 also checks the bytes' sha256
#   3. skopeo copy push oci: -> docker:// and pull docker:// -> dir: of a single-layer image of fresh random
#      data (seconds, median; bench/make-image.py writes it, gzip layer with stored blocks)
#   4. manifest GET requests/s: wrk -t2 -c16 -d10s with a Basic Authorization header and
#      Accept: application/vnd.oci.image.manifest.v1+json (median of BENCH_RUNS)
#   5. each server's peak RSS (VmHWM) after all of the above, and its total CPU time
# The ratio column is oriented so that >1 means regbridge did better (throughputs regbridge/reference, times and
# memory reference/regbridge).
#
# Environment:
#   REGBRIDGE_BIN    regbridge binary (default target/release/regbridge; build it with `cargo build --release`)
#   BENCH_ONLY       both | reference | regbridge          (default both)
#   BENCH_BLOB_MIB   blob size for 1 and 2, MiB            (default 1024)
#   BENCH_IMAGE_MIB  image layer size for 3, MiB           (default 200)
#   BENCH_RUNS       runs per measurement (median)         (default 3)
#   BENCH_WRK_SECONDS  duration of each wrk run            (default 10)
#   BENCH_REGBRIDGE_ARGS  extra arguments for `regbridge serve` (word-split), e.g. "--public-url http://127.0.0.1:P"
#   BENCH_DIR        scratch directory                     (default /tmp/regbridge-bench)
#   BENCH_KEEP=1     keep blobs, images and server storage in BENCH_DIR afterwards (default: deleted on exit;
#                    logs, configs and results.tsv are always kept)
# Tools: curl jq skopeo wrk python3 htpasswd bc docker-registry
#   apt-get install -y docker-registry apache2-utils wrk skopeo jq curl bc
# Shared functions (servers, requests, medians): bench/lib.sh.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SELF=compare.sh
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
BLOB_MIB=${BENCH_BLOB_MIB:-1024}
IMAGE_MIB=${BENCH_IMAGE_MIB:-200}
RUNS=${BENCH_RUNS:-3}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
ONLY=${BENCH_ONLY:-both}
W=${BENCH_DIR:-/tmp/regbridge-bench}
KEEP=${BENCH_KEEP:-0}
RB_BIN=${REGBRIDGE_BIN:-target/release/regbridge}
USER_NAME="admin"

check_counts BLOB_MIB IMAGE_MIB RUNS WRK_SECONDS
[ "$RUNS" -le 100 ] || die "BENCH_RUNS must be at most 100"
case "$ONLY" in
  both) SERVERS=(regbridge reference);;
  reference) SERVERS=(reference);;
  regbridge) SERVERS=(regbridge);;
  *) die "BENCH_ONLY must be both, reference or regbridge (got '$ONLY')";;
esac

# ---------------------------------------------------------------- tools, binaries
tools=(curl jq skopeo wrk python3 bc sha256sum base64 awk)
REF_BIN=""
if has reference; then tools+=(docker-registry htpasswd); fi
require_tools "${tools[@]}"
if has regbridge; then find_regbridge "(or measure the reference alone: BENCH_ONLY=reference $0)"; fi
[ -f "$HERE/make-image.py" ] || die "$HERE/make-image.py is missing"

# ---------------------------------------------------------------- scratch, cleanup
setup_scratch
PASS=$(random_hex 12)
CRED="$USER_NAME:$PASS"
BASIC=$(printf '%s' "$CRED" | base64 -w0)
STAMP=$(date +%s)
CRED_OF[regbridge]=$CRED
CRED_OF[reference]=$CRED
LABEL[regbridge]=regbridge
LABEL[reference]=docker-registry

cleanup() {
  stop_servers
  if [ "$KEEP" != 1 ]; then
    rm -rf "$W/reference/storage" "$W/regbridge/data" "$W/work/blob.bin" "$W/work/img" "$W/work/pull" "$W/tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- machine info
machine_info
echo "sizes:   blob $BLOB_MIB MiB, image layer $IMAGE_MIB MiB, $RUNS run(s), wrk ${WRK_SECONDS}s"

# Rough disk need: every server keeps every blob and layer; plus one blob and one image at a time, plus a pull.
check_disk $(( ${#SERVERS[@]} * RUNS * (BLOB_MIB + IMAGE_MIB) + BLOB_MIB + 2 * IMAGE_MIB + 512 ))

# ---------------------------------------------------------------- start servers
echo "== starting servers"
for s in "${SERVERS[@]}"; do
  "start_$s"
  echo "${LABEL[$s]}: pid ${PID[$s]}, http://127.0.0.1:${PORT[$s]} (log $W/$s/server.log)"
done

# ---------------------------------------------------------------- 1 + 2: blob upload / download
echo "== 1+2. monolithic blob upload and download, $BLOB_MIB MiB, $RUNS run(s)"
BLOB=$W/work/blob.bin
SIZE=$((BLOB_MIB * 1048576))
for i in $(seq 1 "$RUNS"); do
  DG=sha256:$(head -c "$SIZE" /dev/urandom | tee "$BLOB" | sha256sum | cut -c1-64)
  [ "$(stat -c %s "$BLOB")" = "$SIZE" ] || die "could not write $BLOB"
  repo=bench-$STAMP/blob$i
  line="run $i:"
  for s in $(order "$i"); do
    sync
    t=$(blob_upload "$s" "$repo" "$BLOB" "$DG")
    record "$s" upload "$(calc "$BLOB_MIB / $t")"
    line+="  ${LABEL[$s]} up $(fmt "$(calc "$BLOB_MIB / $t")" 1) MiB/s ($(fmt "$t" 2) s)"
  done
  for s in $(order "$i"); do
    sync
    t=$(blob_download "$s" "$repo" "$DG" "$SIZE")
    record "$s" download "$(calc "$BLOB_MIB / $t")"
    line+="  ${LABEL[$s]} down $(fmt "$(calc "$BLOB_MIB / $t")" 1) MiB/s ($(fmt "$t" 2) s)"
    if [ "$i" = 1 ]; then blob_verify "$s" "$repo" "$DG"; fi
  done
  echo "$line"
  rm -f "$BLOB"
done

# ---------------------------------------------------------------- 3: skopeo push / pull
echo "== 3. skopeo push (oci: -> docker://) and pull (docker:// -> dir:), $IMAGE_MIB MiB single layer, $RUNS run(s)"
IMG=$W/work/img
PULL=$W/work/pull
for i in $(seq 1 "$RUNS"); do
  rm -rf "$IMG"
  info=$(python3 "$HERE/make-image.py" "$IMG" "$IMAGE_MIB" --tag v1 --layer gzip)
  layer=$(jq -r '.layer.digest' <<< "$info")
  mdg=$(jq -r '.manifest.digest' <<< "$info")
  if [ "$i" = 1 ]; then MANIFEST_DIGEST=$mdg; fi
  line="run $i:"
  for s in $(order "$i"); do
    sync
    t=$(skopeo_copy "$s" push "oci:$IMG:v1" "docker://127.0.0.1:${PORT[$s]}/bench-$STAMP/img$i:v1")
    record "$s" push "$t"
    line+="  ${LABEL[$s]} push $(fmt "$t" 2) s"
  done
  for s in $(order "$i"); do
    rm -rf "$PULL"
    sync
    t=$(skopeo_copy "$s" pull "docker://127.0.0.1:${PORT[$s]}/bench-$STAMP/img$i:v1" "dir:$PULL")
    [ -f "$PULL/${layer#sha256:}" ] || fail "$s" "skopeo pull did not produce the layer ${layer}"
    record "$s" pull "$t"
    line+="  ${LABEL[$s]} pull $(fmt "$t" 2) s"
  done
  rm -rf "$PULL"
  echo "$line"
done
rm -rf "$IMG"

# ---------------------------------------------------------------- 4: manifest GET req/s
echo "== 4. manifest GET, wrk -t2 -c16 -d${WRK_SECONDS}s, $RUNS run(s)"
for s in "${SERVERS[@]}"; do   # the manifest of run 1 must come back as pushed, with Basic auth, before wrk
  manifest_check "$s" "$(base "$s")/v2/bench-$STAMP/img1/manifests/v1" "$MANIFEST_DIGEST" -u "$CRED"
done
for i in $(seq 1 "$RUNS"); do
  line="run $i:"
  for s in $(order "$i"); do
    url="$(base "$s")/v2/bench-$STAMP/img1/manifests/v1"
    rps=$(run_wrk "$s" "$url" "$W/work/wrk-$s-$i.txt" "Authorization: Basic $BASIC" "Accept: $MT")
    record "$s" rps "$rps"
    errs=$(wrk_errors "$W/work/wrk-$s-$i.txt")
    line+="  ${LABEL[$s]} $(fmt "$rps" 0) req/s${errs:+ ($errs)}"
  done
  echo "$line"
done

# ---------------------------------------------------------------- 5: memory and CPU
echo "== 5. server peak RSS (VmHWM) and CPU time after all of the above"
for s in "${SERVERS[@]}"; do
  kill -0 "${PID[$s]}" 2>/dev/null || fail "$s" "the server is gone"
  read -r hwm rss cpu thr <<< "$(proc_stats "${PID[$s]}")"
  record "$s" rss "$(calc "$hwm / 1024")"
  record "$s" cpu "$cpu"
  echo "${LABEL[$s]}: VmHWM $(fmt "$(calc "$hwm / 1024")" 1) MiB, VmRSS now $(fmt "$(calc "$rss / 1024")" 1) MiB, CPU $cpu s, $thr threads"
done

# ---------------------------------------------------------------- table
# metric key, label, decimals, better (hi: regbridge/reference, lo: reference/regbridge)
if [ "$BLOB_MIB" -ge 1024 ] && [ $((BLOB_MIB % 1024)) = 0 ]; then BL="$((BLOB_MIB / 1024)) GiB"; else BL="$BLOB_MIB MiB"; fi
ROWS=(
  "upload|upload $BL (MiB/s)|1|hi"
  "download|download $BL (MiB/s)|1|hi"
  "push|skopeo push $IMAGE_MIB MiB (s)|2|lo"
  "pull|skopeo pull $IMAGE_MIB MiB (s)|2|lo"
  "rps|manifest GET (req/s)|0|hi"
  "rss|peak RSS (MiB)|1|lo"
  "cpu|server CPU time, total (s)|1|lo"
)
: > "$W/results.tsv"
printf 'metric\tregbridge\tdocker-registry\tratio\n' >> "$W/results.tsv"
echo
echo "== results (median of $RUNS; ratio > 1 means regbridge is better)"
printf '%-32s %12s %17s %9s\n' metric regbridge docker-registry ratio
for row in "${ROWS[@]}"; do
  IFS='|' read -r key label dec better <<< "$row"
  a=-; b=-; r=-
  if has regbridge; then a=$(samples regbridge "$key" | median); fi
  if has reference; then b=$(samples reference "$key" | median); fi
  if [ "$a" != - ] && [ "$b" != - ]; then r=$(ratio "$a" "$b" "$better"); fi
  fa=$a; fb=$b
  [ "$a" != - ] && fa=$(fmt "$a" "$dec")
  [ "$b" != - ] && fb=$(fmt "$b" "$dec")
  printf '%-32s %12s %17s %9s\n' "$label" "$fa" "$fb" "$r"
  printf '%s\t%s\t%s\t%s\n' "$label" "$fa" "$fb" "$r" >> "$W/results.tsv"
done
echo
echo "(per-run samples: $W/work/samples.tsv; table: $W/results.tsv)"
