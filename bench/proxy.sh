#!/usr/bin/env bash
# bench/proxy.sh -- benchmark regbridge's proxy mode: Debian's docker-registry (CNCF distribution 2.8) used
# directly, and the same docker-registry through a regbridge proxy route, in one run on this machine.
#
# This is a benchmark, not a test: it prints numbers and informational targets, it does not pass or fail on
# them (it does stop if a server answers a request wrongly, because then the numbers would mean nothing).
#
# Both servers run on 127.0.0.1 (free ports). docker-registry, "the upstream", has a generated config.yml
# (filesystem storage, bcrypt htpasswd with user "robot" and a random password, log level warn, access log
# off). regbridge runs from REGBRIDGE_BIN with a fresh --data-dir and a --config with two routes: the local
# registry as default route, and prefix "up" -> generic provider -> the upstream as robot (password from
# BENCH_UPSTREAM_PASSWORD). Clients of the proxy are regbridge's "admin" (REGBRIDGE_ADMIN_PASSWORD, random);
# `up/<name>` through the proxy is `<name>` on the upstream. Everything measured was pushed once, directly to
# the upstream; then "direct" reads it from docker-registry as robot and "proxy" reads it through regbridge as
# admin. Measurements are interleaved (run i measures both before run i+1, the order alternates every run) so
# both see the same machine state; `sync` runs before every timed step.
#   1. download of a BENCH_BLOB_MIB blob with curl to /dev/null (MiB/s, median of BENCH_RUNS); run 1 also
#      checks the bytes' sha256 both ways
#   2. skopeo copy docker:// -> dir: of a single-layer BENCH_IMAGE_MIB image (seconds, median; the image is
#      written by bench/make-image.py, gzip layer with stored blocks, pushed with skopeo)
#   3. manifest GET requests/s: wrk -t2 -c16 -dBENCH_WRK_SECONDS with Accept: application/vnd.oci.image.
#      manifest.v1+json and Basic auth, direct and through the proxy; and through the proxy with a Bearer token
#      from regbridge's GET /token?service=regbridge&scope=repository:up/<name>:pull (fetched anew before
#      every run). docker-registry checks bcrypt on every Basic request, and the proxy authenticates to it with
#      Basic as well, so each proxied GET costs the upstream one bcrypt too; the Bearer row takes regbridge's
#      own client authentication out and is compared with the direct Basic number.
#   4. BENCH_CONCURRENT (32) curl downloads at once of a BENCH_CONCURRENT_MIB (100) blob, each to /dev/null,
#      all checked for 200 and the full size (seconds until the last one is done, median), and regbridge's
#      peak RSS (VmHWM): over the whole run, and during these downloads alone (the kernel's peak counter is
#      reset first with `echo 5 > /proc/PID/clear_refs`; root only, otherwise "-").
#   5. regbridge's total CPU time, with docker-registry's (which serves both paths) for reference.
# The ratio column is oriented so that >1 means the proxy did better (throughputs proxy/direct, times
# direct/proxy); about 1 means the proxy costs nothing. The target column is informational: download and
# skopeo pull >= 0.9x, manifest GETs >= 0.8x, regbridge's peak RSS < 150 MiB.
#
# Environment:
#   REGBRIDGE_BIN        regbridge binary (default target/release/regbridge; `cargo build --release`)
#   BENCH_BLOB_MIB       blob size for 1, MiB                       (default 1024)
#   BENCH_IMAGE_MIB      image layer size for 2, MiB                (default 200)
#   BENCH_RUNS           runs per measurement (median)              (default 3)
#   BENCH_WRK_SECONDS    duration of each wrk run                   (default 10)
#   BENCH_CONCURRENT     downloads at once in 4                     (default 32)
#   BENCH_CONCURRENT_MIB blob size for 4, MiB                       (default 100)
#   BENCH_REGBRIDGE_ARGS extra arguments for `regbridge serve` (word-split)
#   BENCH_DIR            scratch directory                          (default /tmp/regbridge-bench-proxy)
#   BENCH_KEEP=1         keep blobs, images and server storage in BENCH_DIR afterwards (default: deleted on
#                        exit; logs, configs and results.tsv are always kept)
# Tools: curl jq skopeo wrk python3 htpasswd docker-registry
#   apt-get install -y docker-registry apache2-utils wrk skopeo jq curl bc
# Shared functions (servers, requests, medians): bench/lib.sh; the local registry benchmark: bench/compare.sh.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SELF=proxy.sh
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
BLOB_MIB=${BENCH_BLOB_MIB:-1024}
IMAGE_MIB=${BENCH_IMAGE_MIB:-200}
RUNS=${BENCH_RUNS:-3}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
CONCURRENT=${BENCH_CONCURRENT:-32}
CONCURRENT_MIB=${BENCH_CONCURRENT_MIB:-100}
W=${BENCH_DIR:-/tmp/regbridge-bench-proxy}
KEEP=${BENCH_KEEP:-0}
RB_BIN=${REGBRIDGE_BIN:-target/release/regbridge}
PREFIX=up                     # the proxy route: up/<name> is <name> on the upstream
RSS_TARGET_MIB=150

check_counts BLOB_MIB IMAGE_MIB RUNS WRK_SECONDS CONCURRENT CONCURRENT_MIB
[ "$RUNS" -le 100 ] || die "BENCH_RUNS must be at most 100"
[ "$CONCURRENT" -le 256 ] || die "BENCH_CONCURRENT must be at most 256"
[ "$WRK_SECONDS" -le 3600 ] || die "BENCH_WRK_SECONDS must be at most 3600"
SERVERS=(regbridge reference)

# ---------------------------------------------------------------- tools, binaries
require_tools curl jq skopeo wrk python3 sha256sum base64 awk docker-registry htpasswd
find_regbridge ""   # (no hint: this benchmark needs both servers)
[ -f "$HERE/make-image.py" ] || die "$HERE/make-image.py is missing"

# ---------------------------------------------------------------- scratch, cleanup
setup_scratch
UP_PASS=$(random_hex 12)
ADMIN_PASS=$(random_hex 12)
CRED_OF[reference]="robot:$UP_PASS"
CRED_OF[regbridge]="admin:$ADMIN_PASS"
RB_ENV=("BENCH_UPSTREAM_PASSWORD=$UP_PASS")
STAMP=$(date +%s)
LABEL[regbridge]=proxy
LABEL[reference]=direct

fail_logs() {  # a failure through the proxy may be the upstream's: show both logs
  log_tail "$1"
  if [ "$1" = regbridge ]; then log_tail reference; fi
}
cleanup() {
  stop_servers
  if [ "$KEEP" != 1 ]; then
    rm -rf "$W/reference/storage" "$W/regbridge/data" "$W/work/blob.bin" "$W/work/img" "$W/work/pull" "$W/tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

name_on() { if [ "$1" = regbridge ]; then echo "$PREFIX/$2"; else echo "$2"; fi; }   # name_on SERVER NAME

random_blob() {  # random_blob FILE MIB -> its digest
  local dg
  dg=sha256:$(head -c "$(( $2 * 1048576 ))" /dev/urandom | tee "$1" | sha256sum | cut -c1-64)
  [ "$(stat -c %s "$1")" = "$(( $2 * 1048576 ))" ] || die "could not write $1"
  echo "$dg"
}

bearer_token() {  # bearer_token NAME -> a pull token for NAME (a name on the proxy) from regbridge's /token
  local out tok exp
  out=$(curl -sS -u "$(cred regbridge)" -o "$W/work/token.json" -w '%{http_code}' --max-time 30 \
        "$(base regbridge)/token?service=regbridge&scope=repository:$1:pull") || fail regbridge "GET /token failed"
  [ "$out" = 200 ] || fail regbridge "GET /token answered $out (want 200): $(head -c 300 "$W/work/token.json")"
  tok=$(jq -r '.token // .access_token // empty' "$W/work/token.json")
  exp=$(jq -r '.expires_in // 60' "$W/work/token.json")
  rm -f "$W/work/token.json"
  [ -n "$tok" ] || fail regbridge "GET /token gave no token"
  [ "$exp" -gt $(( WRK_SECONDS + 5 )) ] || die "regbridge's tokens live ${exp}s, less than a wrk run (BENCH_WRK_SECONDS)"
  echo "$tok"
}

concurrent_download() {  # concurrent_download SERVER NAME DIGEST SIZE -> seconds until all CONCURRENT GETs are done
  local s=$1 url cr size=$4 k t0 t1 code n bad=0 pids=()
  url="$(base "$s")/v2/$2/blobs/$3"
  cr=$(cred "$s")
  rm -f "$W/work/conc-"*
  t0=$(now)
  for k in $(seq 1 "$CONCURRENT"); do
    curl -sS -u "$cr" -o /dev/null -w '%{http_code} %{size_download}' --max-time 900 "$url" \
      > "$W/work/conc-$k.out" 2> "$W/work/conc-$k.err" &
    pids+=("$!")
  done
  for k in "${pids[@]}"; do wait "$k" || true; done
  t1=$(now)
  for k in $(seq 1 "$CONCURRENT"); do
    code=- n=-
    read -r code n < "$W/work/conc-$k.out" || true   # -w writes no newline: read "fails" but still assigns
    if [ "$code" != 200 ] || [ "$n" != "$size" ]; then
      bad=$(( bad + 1 ))
      echo "    GET $k of $CONCURRENT: HTTP $code, $n bytes $(head -c 300 "$W/work/conc-$k.err")" >&2
    fi
  done
  [ "$bad" = 0 ] || fail "$s" "$bad of $CONCURRENT concurrent blob GETs failed (want 200 and $size bytes each)"
  calc "$t1 - $t0"
}

hwm_mib() { awk '/^VmHWM:/ {printf "%.6f", $2 / 1024}' "/proc/$1/status"; }   # hwm_mib PID

# ---------------------------------------------------------------- machine info
machine_info
echo "sizes:   blob $BLOB_MIB MiB, image layer $IMAGE_MIB MiB, $CONCURRENT x $CONCURRENT_MIB MiB at once, $RUNS run(s), wrk ${WRK_SECONDS}s"
# Disk: the upstream keeps every blob and layer; plus one blob, one image and one pull at a time.
check_disk $(( 2 * BLOB_MIB + 3 * IMAGE_MIB + 2 * CONCURRENT_MIB + 512 ))

# ---------------------------------------------------------------- start servers
echo "== starting servers"
start_reference
echo "docker-registry (upstream, user robot): pid ${PID[reference]}, $(base reference) (log $W/reference/server.log)"
mkdir -p "$W/regbridge"
cat > "$W/regbridge/regbridge.toml" <<TOML
[[routes]]
provider = "local"

[[routes]]
prefix = "$PREFIX"
provider = "generic"
registry = "127.0.0.1:${PORT[reference]}"
username = "robot"
password_env = "BENCH_UPSTREAM_PASSWORD"
TOML
start_regbridge --config "$W/regbridge/regbridge.toml"
echo "regbridge (proxy, $PREFIX/<name> -> upstream <name>, user admin): pid ${PID[regbridge]}, $(base regbridge) (log $W/regbridge/server.log)"

# ---------------------------------------------------------------- 1: blob download
echo "== 1. blob download, $BLOB_MIB MiB, $RUNS run(s)"
BLOB=$W/work/blob.bin
SIZE=$(( BLOB_MIB * 1048576 ))
REPO=bench-$STAMP/blob
DG=$(random_blob "$BLOB" "$BLOB_MIB")
t=$(blob_upload reference "$REPO" "$BLOB" "$DG")
rm -f "$BLOB"
echo "pushed to docker-registry in $(fmt "$t" 2) s: $REPO@$DG"
for i in $(seq 1 "$RUNS"); do
  line="run $i:"
  for s in $(order "$i"); do
    sync
    t=$(blob_download "$s" "$(name_on "$s" "$REPO")" "$DG" "$SIZE")
    record "$s" download "$(calc "$BLOB_MIB / $t")"
    line+="  ${LABEL[$s]} $(fmt "$(calc "$BLOB_MIB / $t")" 1) MiB/s ($(fmt "$t" 2) s)"
    if [ "$i" = 1 ]; then blob_verify "$s" "$(name_on "$s" "$REPO")" "$DG"; fi
  done
  echo "$line"
done

# ---------------------------------------------------------------- 2: skopeo pull
echo "== 2. skopeo pull (docker:// -> dir:), $IMAGE_MIB MiB single layer, $RUNS run(s)"
IMG=$W/work/img
PULL=$W/work/pull
REPO=bench-$STAMP/img
info=$(python3 "$HERE/make-image.py" "$IMG" "$IMAGE_MIB" --tag v1 --layer gzip)
LAYER=$(jq -r '.layer.digest' <<< "$info")
MANIFEST_DIGEST=$(jq -r '.manifest.digest' <<< "$info")
t=$(skopeo_copy reference push "oci:$IMG:v1" "docker://127.0.0.1:${PORT[reference]}/$REPO:v1")
rm -rf "$IMG"
echo "pushed to docker-registry with skopeo in $(fmt "$t" 2) s: $REPO:v1 ($MANIFEST_DIGEST)"
for i in $(seq 1 "$RUNS"); do
  line="run $i:"
  for s in $(order "$i"); do
    rm -rf "$PULL"
    sync
    t=$(skopeo_copy "$s" pull "docker://127.0.0.1:${PORT[$s]}/$(name_on "$s" "$REPO"):v1" "dir:$PULL")
    [ -f "$PULL/${LAYER#sha256:}" ] || fail "$s" "skopeo pull did not produce the layer $LAYER"
    record "$s" pull "$t"
    line+="  ${LABEL[$s]} $(fmt "$t" 2) s"
  done
  rm -rf "$PULL"
  echo "$line"
done

# ---------------------------------------------------------------- 3: manifest GET req/s
echo "== 3. manifest GET, wrk -t2 -c16 -d${WRK_SECONDS}s, $RUNS run(s)"
declare -A VS=([direct]=reference [proxy]=regbridge [bearer]=regbridge)            # variant -> server
declare -A VKEY=([direct]=rps [proxy]=rps [bearer]=rps_bearer)                      # variant -> metric
declare -A VLABEL=([direct]="direct Basic" [proxy]="proxy Basic" [bearer]="proxy Bearer")
murl() { echo "$(base "$1")/v2/$(name_on "$1" "$REPO")/manifests/v1"; }   # murl SERVER
# The manifest must come back as pushed, each way, before wrk.
manifest_check reference "$(murl reference)" "$MANIFEST_DIGEST" -u "$(cred reference)"
manifest_check regbridge "$(murl regbridge)" "$MANIFEST_DIGEST" -u "$(cred regbridge)"
manifest_check regbridge "$(murl regbridge)" "$MANIFEST_DIGEST" \
  -H "Authorization: Bearer $(bearer_token "$(name_on regbridge "$REPO")")"
for i in $(seq 1 "$RUNS"); do
  line="run $i:"
  for v in $(alternate "$i" direct proxy bearer); do
    s=${VS[$v]}
    if [ "$v" = bearer ]; then auth="Bearer $(bearer_token "$(name_on regbridge "$REPO")")"
    else auth="Basic $(printf '%s' "$(cred "$s")" | base64 -w0)"; fi
    out=$W/work/wrk-$v-$i.txt
    rps=$(run_wrk "$s" "$(murl "$s")" "$out" "Authorization: $auth" "Accept: $MT")
    record "$s" "${VKEY[$v]}" "$rps"
    errs=$(wrk_errors "$out")
    line+="  ${VLABEL[$v]} $(fmt "$rps" 0) req/s${errs:+ ($errs)}"
  done
  echo "$line"
done

# ---------------------------------------------------------------- 4: concurrent downloads, peak RSS
echo "== 4. $CONCURRENT concurrent downloads of a $CONCURRENT_MIB MiB blob, $RUNS run(s)"
BLOB=$W/work/blob.bin
REPO=bench-$STAMP/conc
DG=$(random_blob "$BLOB" "$CONCURRENT_MIB")
blob_upload reference "$REPO" "$BLOB" "$DG" > /dev/null
rm -f "$BLOB"
kill -0 "${PID[regbridge]}" 2>/dev/null || fail regbridge "the server is gone"
HWM_BEFORE=$(hwm_mib "${PID[regbridge]}")
HWM_RESET=no   # reset the peak counter so that the next VmHWM is the peak during the downloads alone
if { echo 5 > "/proc/${PID[regbridge]}/clear_refs"; } 2>/dev/null; then HWM_RESET=yes; fi
for i in $(seq 1 "$RUNS"); do
  line="run $i:"
  for s in $(order "$i"); do
    sync
    t=$(concurrent_download "$s" "$(name_on "$s" "$REPO")" "$DG" $(( CONCURRENT_MIB * 1048576 )))
    record "$s" conc "$t"
    line+="  ${LABEL[$s]} $(fmt "$t" 2) s ($(fmt "$(calc "$CONCURRENT * $CONCURRENT_MIB / $t")" 0) MiB/s in all)"
  done
  echo "$line"
done
HWM_DURING=$(hwm_mib "${PID[regbridge]}")
if [ "$HWM_RESET" = yes ]; then
  record regbridge rss_conc "$HWM_DURING"
  echo "regbridge VmHWM: $(fmt "$HWM_BEFORE" 1) MiB before, $(fmt "$HWM_DURING" 1) MiB during the concurrent downloads"
else
  echo "regbridge VmHWM: could not reset the peak counter (/proc/PID/clear_refs needs root): whole run only"
fi

# ---------------------------------------------------------------- 5: memory and CPU
echo "== 5. peak RSS (VmHWM) and CPU time after all of the above"
for s in regbridge reference; do
  kill -0 "${PID[$s]}" 2>/dev/null || fail "$s" "the server is gone"
  read -r hwm rss cpu thr <<< "$(proc_stats "${PID[$s]}")"
  hwm=$(calc "$hwm / 1024")
  if [ "$s" = regbridge ]; then hwm=$(awk -v a="$hwm" -v b="$HWM_BEFORE" 'BEGIN { printf "%.6f", (a > b ? a : b) }'); fi
  record "$s" rss "$hwm"
  record "$s" cpu "$cpu"
  if [ "$s" = regbridge ]; then name=regbridge; else name=docker-registry; fi
  echo "$name: VmHWM $(fmt "$hwm" 1) MiB, VmRSS now $(fmt "$(calc "$rss / 1024")" 1) MiB, CPU $cpu s, $thr threads"
done

# regbridge's log (level warn) should be empty: show its last lines. docker-registry's always has some (the
# 401s of unauthenticated probes, "blob unknown" for skopeo's HEADs before a push): count them by kind.
echo "== server logs"
f=$W/regbridge/server.log
echo "regbridge: $(wc -l < "$f") line(s) in $f"
tail -n 20 "$f" | cut -c1-400 | sed 's/^/    /'
f=$W/reference/server.log
echo "docker-registry: $(wc -l < "$f") line(s) in $f, by kind:"
python3 - "$f" <<'PY'
import collections, re, sys
def field(rx, line):
    m = re.search(rx, line)
    return m.group(1) if m else ""
kinds = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    msg = field(r'msg="((?:[^"\\]|\\.)*)"', line).replace('\\"', '"') or line.strip()[:160]
    code = field(r'err\.code="([^"]*)"', line)
    parts = (field(r"level=(\w+)", line), field(r"http\.request\.method=(\w+)", line), msg, code and f"[{code}]")
    kinds[" ".join(p for p in parts if p)] += 1
for kind, n in kinds.most_common(10):
    print(f"    {n:6d}  {kind}")
PY

# ---------------------------------------------------------------- table
# proxy metric|direct metric|label|decimals|better (hi: proxy/direct, lo: direct/proxy, -: no ratio)|target
if [ "$BLOB_MIB" -ge 1024 ] && [ $(( BLOB_MIB % 1024 )) = 0 ]; then BL="$(( BLOB_MIB / 1024 )) GiB"; else BL="$BLOB_MIB MiB"; fi
ROWS=(
  "download|download|download $BL (MiB/s)|1|hi|ratio 0.9"
  "pull|pull|skopeo pull $IMAGE_MIB MiB (s)|2|lo|ratio 0.9"
  "rps|rps|manifest GET, Basic (req/s)|0|hi|ratio 0.8"
  "rps_bearer|rps|manifest GET, proxy Bearer (req/s)|0|hi|ratio 0.8"
  "conc|conc|$CONCURRENT x $CONCURRENT_MIB MiB at once (s)|2|lo|"
  "rss|rss|peak RSS, whole run (MiB)|1|-|below $RSS_TARGET_MIB"
  "rss_conc|-|peak RSS, $CONCURRENT downloads (MiB)|1|-|"
  "cpu|cpu|CPU time, total (s)|1|-|"
)
printf 'metric\tproxy\tdirect\tratio\ttarget\n' > "$W/results.tsv"
echo
echo "== results (median of $RUNS; ratio > 1 or about 1: the proxy is as good as docker-registry used directly)"
echo "   peak RSS and CPU: regbridge's own in the proxy column, docker-registry's (serving both paths) in direct"
printf '%-36s %14s %15s %8s  %s\n' metric "via regbridge" "docker-registry" ratio "target (informational)"
for row in "${ROWS[@]}"; do
  IFS='|' read -r pkey dkey label dec better target <<< "$row"
  a=$(samples regbridge "$pkey" | median || echo -)
  b=-; if [ "$dkey" != - ]; then b=$(samples reference "$dkey" | median || echo -); fi
  r=-
  if [ "$better" != - ] && [ "$a" != - ] && [ "$b" != - ]; then r=$(ratio "$a" "$b" "$better"); fi
  tg=""
  case "$target" in
    ratio\ *) want=${target#ratio }
              tg=">= $(fmt "$want" 2)x"
              if [ "$r" != - ]; then
                if awk -v r="${r%x}" -v w="$want" 'BEGIN { exit !(r >= w) }'; then tg+=": met"; else tg+=": MISSED"; fi
              fi;;
    below\ *) want=${target#below }
              tg="< $want MiB"
              if [ "$a" != - ]; then
                if awk -v a="$a" -v w="$want" 'BEGIN { exit !(a < w) }'; then tg+=": met"; else tg+=": MISSED"; fi
              fi;;
  esac
  fa=$a; fb=$b
  [ "$a" = - ] || fa=$(fmt "$a" "$dec")
  [ "$b" = - ] || fb=$(fmt "$b" "$dec")
  printf '%-36s %14s %15s %8s  %s\n' "$label" "$fa" "$fb" "$r" "$tg"
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$fa" "$fb" "$r" "$tg" >> "$W/results.tsv"
done
echo
echo "(per-run samples: $W/work/samples.tsv; table: $W/results.tsv)"
