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
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BLOB_MIB=${BENCH_BLOB_MIB:-1024}
IMAGE_MIB=${BENCH_IMAGE_MIB:-200}
RUNS=${BENCH_RUNS:-3}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
ONLY=${BENCH_ONLY:-both}
W=${BENCH_DIR:-/tmp/regbridge-bench}
KEEP=${BENCH_KEEP:-0}
RB_BIN=${REGBRIDGE_BIN:-target/release/regbridge}
USER_NAME="admin"

die() { echo "compare.sh: $*" >&2; exit 1; }
for v in BLOB_MIB IMAGE_MIB RUNS WRK_SECONDS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_${v} must be a positive integer (got '${!v}')"
done
[ "$RUNS" -le 100 ] || die "BENCH_RUNS must be at most 100"
case "$ONLY" in
  both) SERVERS=(regbridge reference);;
  reference) SERVERS=(reference);;
  regbridge) SERVERS=(regbridge);;
  *) die "BENCH_ONLY must be both, reference or regbridge (got '$ONLY')";;
esac
has() { local s; for s in "${SERVERS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# ---------------------------------------------------------------- tools, binaries
missing=()
for t in curl jq skopeo wrk python3 bc sha256sum base64 awk; do command -v "$t" >/dev/null || missing+=("$t"); done
REF_BIN=""
if has reference; then
  REF_BIN=$(command -v docker-registry || true)
  [ -n "$REF_BIN" ] || missing+=(docker-registry)
  command -v htpasswd >/dev/null || missing+=("htpasswd(apache2-utils)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing tools: ${missing[*]}" >&2
  echo "install them with: apt-get install -y docker-registry apache2-utils wrk skopeo jq curl bc" >&2
  exit 3
fi
if has regbridge; then
  case "$RB_BIN" in
    /*) ;;
    *) if [ -e "$RB_BIN" ]; then RB_BIN=$(cd "$(dirname "$RB_BIN")" && pwd)/$(basename "$RB_BIN")
       else RB_BIN=$ROOT/$RB_BIN; fi;;
  esac
  if [ ! -x "$RB_BIN" ]; then
    echo "regbridge binary not found at $RB_BIN" >&2
    echo "build it first:  (cd $ROOT && cargo build --release)   or set REGBRIDGE_BIN=/path/to/regbridge" >&2
    echo "(or measure the reference alone: BENCH_ONLY=reference $0)" >&2
    exit 3
  fi
  case "$RB_BIN" in */debug/*) echo "warning: $RB_BIN looks like a debug build; its numbers mean little (cargo build --release)" >&2;; esac
fi
[ -f "$HERE/make-image.py" ] || die "$HERE/make-image.py is missing"

# ---------------------------------------------------------------- scratch, cleanup
mkdir -p "$W"
W=$(cd "$W" && pwd)
[ "$W" != / ] || die "BENCH_DIR must not be /"
rm -rf "$W/reference" "$W/regbridge" "$W/work" "$W/tmp"
mkdir -p "$W/work" "$W/tmp"
export TMPDIR=$W/tmp
# skopeo gets an empty auth file (only --src/--dest-creds count). Not exported: docker-registry reads every
# REGISTRY_* variable as configuration, and REGISTRY_AUTH_FILE would become its auth.file setting.
SKOPEO_AUTH=$W/work/skopeo-auth.json
echo '{}' > "$SKOPEO_AUTH"
unset REGISTRY_AUTH_FILE
skopeo() { REGISTRY_AUTH_FILE=$SKOPEO_AUTH command skopeo "$@"; }
PASS=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
CRED="$USER_NAME:$PASS"
BASIC=$(printf '%s' "$CRED" | base64 -w0)
STAMP=$(date +%s)
declare -A PORT PID LABEL
LABEL[regbridge]=regbridge
LABEL[reference]=docker-registry

stop_pid() {  # stop_pid PID: TERM, wait up to 5 s, then KILL
  local p=$1 i
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local s
  for s in "${!PID[@]}"; do stop_pid "${PID[$s]}"; done
  if [ "$KEEP" != 1 ]; then
    rm -rf "$W/reference/storage" "$W/regbridge/data" "$W/work/blob.bin" "$W/work/img" "$W/work/pull" "$W/tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }          # calc '1 / 3'
median() { sort -g | awk '{a[NR]=$1} END { if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
log_tail() { local f=$W/$1/server.log; [ -f "$f" ] && { echo "--- last lines of $f:" >&2; tail -20 "$f" >&2; }; return 0; }
fail() {  # fail SERVER MESSAGE
  echo "compare.sh: ${LABEL[$1]}: $2" >&2
  log_tail "$1"
  exit 1
}
order() {  # order RUN: the servers, reversed on even runs
  if [ $(( $1 % 2 )) = 1 ]; then printf '%s\n' "${SERVERS[@]}"; else printf '%s\n' "${SERVERS[@]}" | tac; fi
}
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$W/work/samples.tsv"; }   # record SERVER METRIC VALUE
samples() { awk -F'\t' -v s="$1" -v m="$2" '$1==s && $2==m {print $3}' "$W/work/samples.tsv"; }
: > "$W/work/samples.tsv"

wait_ready() {  # wait_ready SERVER: until GET /v2/ says 401 (at most 30 s), then check the credentials
  local s=$1 code="" i
  for i in $(seq 1 300); do
    kill -0 "${PID[$s]}" 2>/dev/null || fail "$s" "the server exited during startup"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${PORT[$s]}/v2/" || true)
    [ "$code" = 401 ] && break
    sleep 0.1
  done
  [ "$code" = 401 ] || fail "$s" "GET /v2/ without credentials still answers '$code' after 30 s (want 401)"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -u "$CRED" "http://127.0.0.1:${PORT[$s]}/v2/" || true)
  [ "$code" = 200 ] || fail "$s" "GET /v2/ with Basic $USER_NAME:<password> answers '$code' (want 200)"
}

start_reference() {
  local d=$W/reference
  mkdir -p "$d/storage"
  PORT[reference]=$(free_port)
  htpasswd -Bbn "$USER_NAME" "$PASS" > "$d/htpasswd"
  cat > "$d/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${PORT[reference]}
  secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: regbridge-bench
    path: $d/htpasswd
YAML
  # env -u: no REGISTRY_* variable from the caller may override the generated configuration
  # shellcheck disable=SC2046
  env $(env | awk -F= '/^REGISTRY_/ {printf "-u %s ", $1}') "$REF_BIN" serve "$d/config.yml" > "$d/server.log" 2>&1 < /dev/null &
  PID[reference]=$!
  wait_ready reference
}

start_regbridge() {
  local d=$W/regbridge
  mkdir -p "$d"
  PORT[regbridge]=$(free_port)
  # REGBRIDGE_LOG=warn mirrors the reference's "log level warn, no access log" (override: export REGBRIDGE_LOG).
  # env -u: no other REGBRIDGE_* variable of the caller (REGBRIDGE_PUBLIC_URL, ..._ANONYMOUS_PULL, ...) may change
  # the server's configuration; extra flags go in BENCH_REGBRIDGE_ARGS.
  # shellcheck disable=SC2046,SC2086
  env $(env | awk -F= '/^REGBRIDGE_/ && $1 != "REGBRIDGE_LOG" {printf "-u %s ", $1}') \
    REGBRIDGE_LOG="${REGBRIDGE_LOG:-warn}" REGBRIDGE_ADMIN_PASSWORD="$PASS" \
    "$RB_BIN" serve --listen "127.0.0.1:${PORT[regbridge]}" --data-dir "$d/data" ${BENCH_REGBRIDGE_ARGS:-} \
    > "$d/server.log" 2>&1 < /dev/null &
  PID[regbridge]=$!
  wait_ready regbridge
}

base() { echo "http://127.0.0.1:${PORT[$1]}"; }

blob_upload() {  # blob_upload SERVER REPO FILE DIGEST -> seconds (POST + PUT)
  local s=$1 repo=$2 f=$3 dg=$4 hdr=$W/work/post.hdr out code t1 loc sep t2 up
  out=$(curl -sS -u "$CRED" -X POST -o /dev/null -D "$hdr" -w '%{http_code} %{time_total}' --max-time 60 \
        "$(base "$s")/v2/$repo/blobs/uploads/") || fail "$s" "POST /v2/$repo/blobs/uploads/ failed"
  read -r code t1 <<< "$out"
  [ "$code" = 202 ] || fail "$s" "POST /v2/$repo/blobs/uploads/ answered $code (want 202)"
  loc=$(tr -d '\r' < "$hdr" | awk 'tolower($1)=="location:" {print $2; exit}')
  [ -n "$loc" ] || fail "$s" "POST /v2/$repo/blobs/uploads/ gave no Location"
  case "$loc" in http://*|https://*) ;; /*) loc="$(base "$s")$loc";; *) fail "$s" "odd upload Location: $loc";; esac
  case "$loc" in *\?*) sep='&';; *) sep='?';; esac
  # -T streams the file (Content-Length set); 'Expect:' stops curl from waiting for "100 Continue".
  out=$(curl -sS -u "$CRED" -o "$W/work/put.body" -w '%{http_code} %{time_total} %{size_upload}' --max-time 1800 \
        -H 'Content-Type: application/octet-stream' -H 'Expect:' -T "$f" "$loc${sep}digest=$dg") \
    || fail "$s" "PUT of the blob failed"
  read -r code t2 up <<< "$out"
  [ "$code" = 201 ] || fail "$s" "PUT <location>&digest= answered $code (want 201): $(head -c 400 "$W/work/put.body")"
  [ "$up" = "$(stat -c %s "$f")" ] || fail "$s" "PUT sent only $up bytes"
  calc "$t1 + $t2"
}

blob_download() {  # blob_download SERVER REPO DIGEST SIZE -> seconds
  local s=$1 repo=$2 dg=$3 size=$4 out code t n redirs
  out=$(curl -sS -L -u "$CRED" -o /dev/null -w '%{http_code} %{time_total} %{size_download} %{num_redirects}' \
        --max-time 1800 "$(base "$s")/v2/$repo/blobs/$dg") || fail "$s" "GET /v2/$repo/blobs/$dg failed"
  read -r code t n redirs <<< "$out"
  [ "$code" = 200 ] && [ "$n" = "$size" ] || fail "$s" "GET blob answered $code with $n bytes (want 200, $size)"
  [ "$redirs" = 0 ] || echo "    (${LABEL[$s]}: blob GET followed $redirs redirect(s))" >&2
  echo "$t"
}

blob_verify() {  # untimed: the bytes served really are the blob
  local s=$1 repo=$2 dg=$3 got
  got=$(curl -sS -L -u "$CRED" --max-time 1800 "$(base "$s")/v2/$repo/blobs/$dg" | sha256sum | cut -c1-64)
  [ "sha256:$got" = "$dg" ] || fail "$s" "GET blob returned content with digest sha256:$got, want $dg"
}

fmt() { awk -v x="$1" -v p="$2" 'BEGIN { printf "%." p "f", x }'; }

# ---------------------------------------------------------------- machine info
sha_ni=no; grep -qw sha_ni /proc/cpuinfo && sha_ni=yes
echo "== machine"
echo "cpu:     $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), sha_ni: $sha_ni"
echo "memory:  $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "scratch: $W ($(df -PT "$W" | awk 'NR==2 {printf "%s, %.0f GiB free", $2, $5/1048576}'))"
echo "tools:   curl $(curl --version | awk 'NR==1 {print $2}'), skopeo $(skopeo --version | awk '{print $3}'), $(wrk -v 2>&1 | awk 'NR==1 {print $1, $2}')"
if has reference; then echo "reference: $(timeout 5 "$REF_BIN" --version 2>&1 | head -1)"; fi
if has regbridge; then echo "regbridge: $RB_BIN ($(timeout 5 "$RB_BIN" --version 2>/dev/null < /dev/null | head -1 || true))"; fi
echo "sizes:   blob $BLOB_MIB MiB, image layer $IMAGE_MIB MiB, $RUNS run(s), wrk ${WRK_SECONDS}s"

# Rough disk need: every server keeps every blob and layer; plus one blob and one image at a time, plus a pull.
need_mib=$(( ${#SERVERS[@]} * RUNS * (BLOB_MIB + IMAGE_MIB) + BLOB_MIB + 2 * IMAGE_MIB + 512 ))
avail_mib=$(df -Pm "$W" | awk 'NR==2 {print $4}')
[ "$avail_mib" -ge "$need_mib" ] || die "need about $need_mib MiB free in $W, have $avail_mib MiB"

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
    t0=$(now)
    skopeo copy -q --retry-times 0 --dest-tls-verify=false --dest-creds "$CRED" \
      "oci:$IMG:v1" "docker://127.0.0.1:${PORT[$s]}/bench-$STAMP/img$i:v1" > "$W/work/skopeo.out" 2>&1 \
      || { cat "$W/work/skopeo.out" >&2; fail "$s" "skopeo push failed"; }
    t1=$(now)
    record "$s" push "$(calc "$t1 - $t0")"
    line+="  ${LABEL[$s]} push $(fmt "$(calc "$t1 - $t0")" 2) s"
  done
  for s in $(order "$i"); do
    rm -rf "$PULL"
    sync
    t0=$(now)
    skopeo copy -q --retry-times 0 --src-tls-verify=false --src-creds "$CRED" \
      "docker://127.0.0.1:${PORT[$s]}/bench-$STAMP/img$i:v1" "dir:$PULL" > "$W/work/skopeo.out" 2>&1 \
      || { cat "$W/work/skopeo.out" >&2; fail "$s" "skopeo pull failed"; }
    t1=$(now)
    [ -f "$PULL/${layer#sha256:}" ] || fail "$s" "skopeo pull did not produce the layer ${layer}"
    record "$s" pull "$(calc "$t1 - $t0")"
    line+="  ${LABEL[$s]} pull $(fmt "$(calc "$t1 - $t0")" 2) s"
  done
  rm -rf "$PULL"
  echo "$line"
done
rm -rf "$IMG"

# ---------------------------------------------------------------- 4: manifest GET req/s
echo "== 4. manifest GET, wrk -t2 -c16 -d${WRK_SECONDS}s, $RUNS run(s)"
MT=application/vnd.oci.image.manifest.v1+json
for s in "${SERVERS[@]}"; do   # the manifest of run 1 must come back as pushed, with Basic auth, before wrk
  url="$(base "$s")/v2/bench-$STAMP/img1/manifests/v1"
  out=$(curl -sS -u "$CRED" -H "Accept: $MT" -o "$W/work/manifest.json" -D "$W/work/manifest.hdr" \
        -w '%{http_code} %{content_type}' --max-time 30 "$url") || fail "$s" "GET $url failed"
  read -r code ctype <<< "$out"
  [ "$code" = 200 ] || fail "$s" "GET manifest answered $code (want 200)"
  [ "${ctype%%;*}" = "$MT" ] || fail "$s" "GET manifest has Content-Type '$ctype' (want $MT)"
  got=sha256:$(sha256sum < "$W/work/manifest.json" | cut -c1-64)
  [ "$got" = "$MANIFEST_DIGEST" ] || fail "$s" "GET manifest returned digest $got, skopeo pushed $MANIFEST_DIGEST"
done
for i in $(seq 1 "$RUNS"); do
  line="run $i:"
  for s in $(order "$i"); do
    url="$(base "$s")/v2/bench-$STAMP/img1/manifests/v1"
    wrk -t2 -c16 -d"${WRK_SECONDS}s" -H "Authorization: Basic $BASIC" -H "Accept: $MT" "$url" \
      > "$W/work/wrk-$s-$i.txt" 2>&1 || { cat "$W/work/wrk-$s-$i.txt" >&2; fail "$s" "wrk failed"; }
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$W/work/wrk-$s-$i.txt")
    [ -n "$rps" ] || { cat "$W/work/wrk-$s-$i.txt" >&2; fail "$s" "no Requests/sec in wrk output"; }
    if grep -q 'Non-2xx or 3xx responses' "$W/work/wrk-$s-$i.txt"; then
      cat "$W/work/wrk-$s-$i.txt" >&2; fail "$s" "wrk saw error responses (auth?)"
    fi
    record "$s" rps "$rps"
    errs=$(awk '/Socket errors/ {print}' "$W/work/wrk-$s-$i.txt")
    line+="  ${LABEL[$s]} $(fmt "$rps" 0) req/s${errs:+ ($errs)}"
  done
  echo "$line"
done

# ---------------------------------------------------------------- 5: memory and CPU
echo "== 5. server peak RSS (VmHWM) and CPU time after all of the above"
CLK=$(getconf CLK_TCK)
for s in "${SERVERS[@]}"; do
  kill -0 "${PID[$s]}" 2>/dev/null || fail "$s" "the server is gone"
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[$s]}/status")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${PID[$s]}/status")
  # utime + stime (fields 14, 15 of /proc/PID/stat; the command name in field 2 has no spaces here)
  cpu=$(awk -v hz="$CLK" '{printf "%.2f", ($14 + $15) / hz}' "/proc/${PID[$s]}/stat")
  thr=$(awk '/^Threads:/ {print $2}' "/proc/${PID[$s]}/status")
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
  if [ "$a" != - ] && [ "$b" != - ]; then
    if [ "$better" = hi ]; then r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    else r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%.2fx", b / a; else print "-" }'); fi
  fi
  fa=$a; fb=$b
  [ "$a" != - ] && fa=$(fmt "$a" "$dec")
  [ "$b" != - ] && fb=$(fmt "$b" "$dec")
  printf '%-32s %12s %17s %9s\n' "$label" "$fa" "$fb" "$r"
  printf '%s\t%s\t%s\t%s\n' "$label" "$fa" "$fb" "$r" >> "$W/results.tsv"
done
echo
echo "(per-run samples: $W/work/samples.tsv; table: $W/results.tsv)"
