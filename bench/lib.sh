# bench/lib.sh -- shell functions shared by the benchmarks (bench/compare.sh, bench/proxy.sh).
# Source it (`. "$HERE/lib.sh"`), do not run it. Sourcing only defines functions, the arrays below and MT.
#
# The two servers are called "regbridge" and "reference" (Debian's docker-registry) everywhere: they name the
# directories $W/regbridge and $W/reference (server.log, configuration, storage) and key these arrays:
#   PORT[s] PID[s]  set by start_reference / start_regbridge
#   LABEL[s]        the name used in messages (the sourcing script sets it)
#   CRED_OF[s]      "user:password" that clients use for server s (the sourcing script sets it before
#                   starting the servers; start_reference makes its htpasswd from it, start_regbridge takes the
#                   admin password from it, so the user must be "admin" there)
# Other globals the functions use, set by the sourcing script:
#   SELF            the script's name, prefix of error messages
#   SERVERS         the servers it measures (has, order, machine_info)
#   W               the scratch directory (setup_scratch resolves and prepares it)
#   WRK_SECONDS     the duration of each wrk run
#   RB_BIN, REF_BIN the binaries (find_regbridge and require_tools set them)
#   RB_ENV          extra NAME=value words for regbridge's environment (array; may be empty)
# shellcheck shell=bash

declare -A PORT=() PID=() LABEL=() CRED_OF=()
RB_ENV=()
MT=application/vnd.oci.image.manifest.v1+json   # the manifests' media type (Accept header)

die() { echo "$SELF: $*" >&2; exit 1; }
has() { local s; for s in "${SERVERS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

check_counts() {  # check_counts VAR...: each must hold a positive integer (its knob is BENCH_VAR)
  local v
  for v in "$@"; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_${v} must be a positive integer (got '${!v}')"
  done
}

require_tools() {  # require_tools TOOL...: exit 3 naming the missing ones; docker-registry also sets REF_BIN
  local t missing=()
  for t in "$@"; do
    case "$t" in
      docker-registry) REF_BIN=$(command -v docker-registry || true); [ -n "$REF_BIN" ] || missing+=(docker-registry);;
      htpasswd) command -v htpasswd >/dev/null || missing+=("htpasswd(apache2-utils)");;
      *) command -v "$t" >/dev/null || missing+=("$t");;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing tools: ${missing[*]}" >&2
    echo "install them with: apt-get install -y docker-registry apache2-utils wrk skopeo jq curl bc" >&2
    exit 3
  fi
}

find_regbridge() {  # find_regbridge HINT: make RB_BIN absolute (relative: to the cwd if it exists, else to ROOT)
  case "$RB_BIN" in
    /*) ;;
    *) if [ -e "$RB_BIN" ]; then RB_BIN=$(cd "$(dirname "$RB_BIN")" && pwd)/$(basename "$RB_BIN")
       else RB_BIN=$ROOT/$RB_BIN; fi;;
  esac
  if [ ! -x "$RB_BIN" ]; then
    echo "regbridge binary not found at $RB_BIN" >&2
    echo "build it first:  (cd $ROOT && cargo build --release)   or set REGBRIDGE_BIN=/path/to/regbridge" >&2
    if [ -n "$1" ]; then echo "$1" >&2; fi
    exit 3
  fi
  case "$RB_BIN" in */debug/*) echo "warning: $RB_BIN looks like a debug build; its numbers mean little (cargo build --release)" >&2;; esac
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }   # random_hex BYTES

setup_scratch() {  # resolve W, start its server and work directories afresh, point TMPDIR and skopeo there
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
  : > "$W/work/samples.tsv"
}
skopeo() { REGISTRY_AUTH_FILE=$SKOPEO_AUTH command skopeo "$@"; }

stop_pid() {  # stop_pid PID: TERM, wait up to 5 s, then KILL
  local p=$1
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  wait "$p" 2>/dev/null || true
}
stop_servers() { local s; for s in "${!PID[@]}"; do stop_pid "${PID[$s]}"; done; }

# ---------------------------------------------------------------- small helpers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }          # calc '1 / 3'
median() { sort -g | awk '{a[NR]=$1} END { if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
fmt() { awk -v x="$1" -v p="$2" 'BEGIN { printf "%." p "f", x }'; }   # fmt NUMBER DECIMALS
ratio() {  # ratio A B hi|lo: A/B (hi: bigger is better) or B/A (lo: smaller is better) as "1.23x", else "-"
  if [ "$3" = hi ]; then awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'
  else awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2fx", b / a; else print "-" }'; fi
}
base() { echo "http://127.0.0.1:${PORT[$1]}"; }
cred() { echo "${CRED_OF[$1]}"; }

log_tail() { local f=$W/$1/server.log; [ -f "$f" ] && { echo "--- last lines of $f:" >&2; tail -20 "$f" >&2; }; return 0; }
fail_logs() { log_tail "$1"; }   # the logs fail shows; a script may redefine it
fail() {  # fail SERVER MESSAGE
  echo "$SELF: ${LABEL[$1]}: $2" >&2
  fail_logs "$1"
  exit 1
}

alternate() {  # alternate RUN ITEM...: the items, reversed on even runs
  local run=$1; shift
  if [ $(( run % 2 )) = 1 ]; then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}
order() { alternate "$1" "${SERVERS[@]}"; }   # order RUN: the servers, reversed on even runs
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$W/work/samples.tsv"; }   # record SERVER METRIC VALUE
samples() { awk -F'\t' -v s="$1" -v m="$2" '$1==s && $2==m {print $3}' "$W/work/samples.tsv"; }

proc_stats() {  # proc_stats PID -> "VmHWM_KiB VmRSS_KiB CPU_seconds threads"
  local p=$1 hwm rss thr cpu
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
  thr=$(awk '/^Threads:/ {print $2}' "/proc/$p/status")
  # utime + stime (fields 14, 15 of /proc/PID/stat; the command name in field 2 has no spaces here)
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$p/stat")
  echo "$hwm $rss $cpu $thr"
}

machine_info() {
  local sha_ni=no
  grep -qw sha_ni /proc/cpuinfo && sha_ni=yes
  echo "== machine"
  echo "cpu:     $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), sha_ni: $sha_ni"
  echo "memory:  $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "scratch: $W ($(df -PT "$W" | awk 'NR==2 {printf "%s, %.0f GiB free", $2, $5/1048576}'))"
  echo "tools:   curl $(curl --version | awk 'NR==1 {print $2}'), skopeo $(skopeo --version | awk '{print $3}'), $(wrk -v 2>&1 | awk 'NR==1 {print $1, $2}')"
  if has reference; then echo "reference: $(timeout 5 "$REF_BIN" --version 2>&1 | head -1)"; fi
  if has regbridge; then echo "regbridge: $RB_BIN ($(timeout 5 "$RB_BIN" --version 2>/dev/null < /dev/null | head -1 || true))"; fi
}

check_disk() {  # check_disk MIB: stop unless W has that much free space
  local avail
  avail=$(df -Pm "$W" | awk 'NR==2 {print $4}')
  [ "$avail" -ge "$1" ] || die "need about $1 MiB free in $W, have $avail MiB"
}

# ---------------------------------------------------------------- servers
wait_ready() {  # wait_ready SERVER: until GET /v2/ says 401 (at most 30 s), then check the credentials
  local s=$1 code=""
  for _ in $(seq 1 300); do
    kill -0 "${PID[$s]}" 2>/dev/null || fail "$s" "the server exited during startup"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$(base "$s")/v2/" || true)
    [ "$code" = 401 ] && break
    sleep 0.1
  done
  [ "$code" = 401 ] || fail "$s" "GET /v2/ without credentials still answers '$code' after 30 s (want 401)"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -u "$(cred "$s")" "$(base "$s")/v2/" || true)
  [ "$code" = 200 ] || fail "$s" "GET /v2/ with Basic ${CRED_OF[$s]%%:*}:<password> answers '$code' (want 200)"
}

start_reference() {  # docker-registry: filesystem storage in $W/reference/storage, bcrypt htpasswd of CRED_OF[reference]
  local d=$W/reference c=${CRED_OF[reference]}
  mkdir -p "$d/storage"
  PORT[reference]=$(free_port)
  htpasswd -Bbn "${c%%:*}" "${c#*:}" > "$d/htpasswd"
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
  secret: $(random_hex 16)
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

start_regbridge() {  # start_regbridge [SERVE_ARG...]: data in $W/regbridge/data, admin password from CRED_OF[regbridge]
  local d=$W/regbridge
  mkdir -p "$d"
  PORT[regbridge]=$(free_port)
  # REGBRIDGE_LOG=warn mirrors the reference's "log level warn, no access log" (override: export REGBRIDGE_LOG).
  # env -u: no other REGBRIDGE_* variable of the caller (REGBRIDGE_PUBLIC_URL, ..._ANONYMOUS_PULL, ...) may change
  # the server's configuration; extra flags go in BENCH_REGBRIDGE_ARGS.
  # shellcheck disable=SC2046,SC2086
  env $(env | awk -F= '/^REGBRIDGE_/ && $1 != "REGBRIDGE_LOG" {printf "-u %s ", $1}') \
    REGBRIDGE_LOG="${REGBRIDGE_LOG:-warn}" REGBRIDGE_ADMIN_PASSWORD="${CRED_OF[regbridge]#*:}" "${RB_ENV[@]}" \
    "$RB_BIN" serve --listen "127.0.0.1:${PORT[regbridge]}" --data-dir "$d/data" "$@" ${BENCH_REGBRIDGE_ARGS:-} \
    > "$d/server.log" 2>&1 < /dev/null &
  PID[regbridge]=$!
  wait_ready regbridge
}

# ---------------------------------------------------------------- requests (REPO is the name on SERVER)
blob_upload() {  # blob_upload SERVER REPO FILE DIGEST -> seconds (POST + PUT)
  local s=$1 repo=$2 f=$3 dg=$4 hdr=$W/work/post.hdr out code t1 loc sep t2 up
  out=$(curl -sS -u "$(cred "$s")" -X POST -o /dev/null -D "$hdr" -w '%{http_code} %{time_total}' --max-time 60 \
        "$(base "$s")/v2/$repo/blobs/uploads/") || fail "$s" "POST /v2/$repo/blobs/uploads/ failed"
  read -r code t1 <<< "$out"
  [ "$code" = 202 ] || fail "$s" "POST /v2/$repo/blobs/uploads/ answered $code (want 202)"
  loc=$(tr -d '\r' < "$hdr" | awk 'tolower($1)=="location:" {print $2; exit}')
  [ -n "$loc" ] || fail "$s" "POST /v2/$repo/blobs/uploads/ gave no Location"
  case "$loc" in http://*|https://*) ;; /*) loc="$(base "$s")$loc";; *) fail "$s" "odd upload Location: $loc";; esac
  case "$loc" in *\?*) sep='&';; *) sep='?';; esac
  # -T streams the file (Content-Length set); 'Expect:' stops curl from waiting for "100 Continue".
  out=$(curl -sS -u "$(cred "$s")" -o "$W/work/put.body" -w '%{http_code} %{time_total} %{size_upload}' --max-time 1800 \
        -H 'Content-Type: application/octet-stream' -H 'Expect:' -T "$f" "$loc${sep}digest=$dg") \
    || fail "$s" "PUT of the blob failed"
  read -r code t2 up <<< "$out"
  [ "$code" = 201 ] || fail "$s" "PUT <location>&digest= answered $code (want 201): $(head -c 400 "$W/work/put.body")"
  [ "$up" = "$(stat -c %s "$f")" ] || fail "$s" "PUT sent only $up bytes"
  calc "$t1 + $t2"
}

blob_download() {  # blob_download SERVER REPO DIGEST SIZE -> seconds
  local s=$1 repo=$2 dg=$3 size=$4 out code t n redirs
  out=$(curl -sS -L -u "$(cred "$s")" -o /dev/null -w '%{http_code} %{time_total} %{size_download} %{num_redirects}' \
        --max-time 1800 "$(base "$s")/v2/$repo/blobs/$dg") || fail "$s" "GET /v2/$repo/blobs/$dg failed"
  read -r code t n redirs <<< "$out"
  if [ "$code" != 200 ] || [ "$n" != "$size" ]; then fail "$s" "GET blob answered $code with $n bytes (want 200, $size)"; fi
  [ "$redirs" = 0 ] || echo "    (${LABEL[$s]}: blob GET followed $redirs redirect(s))" >&2
  echo "$t"
}

blob_verify() {  # untimed: the bytes served really are the blob
  local s=$1 repo=$2 dg=$3 got
  got=$(curl -sS -L -u "$(cred "$s")" --max-time 1800 "$(base "$s")/v2/$repo/blobs/$dg" | sha256sum | cut -c1-64)
  [ "sha256:$got" = "$dg" ] || fail "$s" "GET blob returned content with digest sha256:$got, want $dg"
}

skopeo_copy() {  # skopeo_copy SERVER push|pull SRC DEST -> seconds; SERVER's credentials on the docker:// side
  local s=$1 what=$2 src=$3 dst=$4 side=src t0 t1
  [ "$what" = push ] && side=dest
  t0=$(now)
  skopeo copy -q --retry-times 0 "--$side-tls-verify=false" "--$side-creds" "$(cred "$s")" "$src" "$dst" \
    > "$W/work/skopeo.out" 2>&1 || { cat "$W/work/skopeo.out" >&2; fail "$s" "skopeo $what failed"; }
  t1=$(now)
  calc "$t1 - $t0"
}

manifest_check() {  # manifest_check SERVER URL DIGEST [CURL_ARG...]: GET URL answers the manifest DIGEST as OCI
  local s=$1 url=$2 want=$3 out code ctype got
  shift 3
  out=$(curl -sS "$@" -H "Accept: $MT" -o "$W/work/manifest.json" -D "$W/work/manifest.hdr" \
        -w '%{http_code} %{content_type}' --max-time 30 "$url") || fail "$s" "GET $url failed"
  read -r code ctype <<< "$out"
  [ "$code" = 200 ] || fail "$s" "GET manifest answered $code (want 200)"
  [ "${ctype%%;*}" = "$MT" ] || fail "$s" "GET manifest has Content-Type '$ctype' (want $MT)"
  got=sha256:$(sha256sum < "$W/work/manifest.json" | cut -c1-64)
  [ "$got" = "$want" ] || fail "$s" "GET manifest returned digest $got, skopeo pushed $want"
}

run_wrk() {  # run_wrk SERVER URL OUTFILE HEADER...: wrk -t2 -c16 for WRK_SECONDS -> requests/s (fails on errors)
  local s=$1 url=$2 out=$3 h args=() rps
  shift 3
  for h in "$@"; do args+=(-H "$h"); done
  wrk -t2 -c16 -d"${WRK_SECONDS}s" "${args[@]}" "$url" > "$out" 2>&1 || { cat "$out" >&2; fail "$s" "wrk failed"; }
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  [ -n "$rps" ] || { cat "$out" >&2; fail "$s" "no Requests/sec in wrk output"; }
  if grep -q 'Non-2xx or 3xx responses' "$out"; then
    cat "$out" >&2; fail "$s" "wrk saw error responses (auth?)"
  fi
  echo "$rps"
}
wrk_errors() { awk '/Socket errors/ {print}' "$1"; }   # wrk_errors OUTFILE: its "Socket errors" line, if any
