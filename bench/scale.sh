#!/usr/bin/env bash
# bench/scale.sh -- listing cost against the size of the registry.
#
# A benchmark, not a test: it prints numbers. One regbridge server; through its API (bench/scale-client.py,
# one manifest PUT by tag per entry, 4 connections) it gets BENCH_SMALL repositories plus BENCH_SMALL tags in
# one repository, is measured, then grows to BENCH_REPOS repositories and BENCH_TAGS tags and is measured
# again, then once more after a restart on the same data. Each measurement is the median of BENCH_RUNS GETs
# on a kept-alive connection, as admin (Basic): the first and a late catalog page (n=100), the first and a
# late tag page (n=100), and a manifest GET by tag; then the server's RSS. On fs, the time to rebuild the
# listing index (removed with the server stopped) is measured at start-up as well.
#
# Environment: REGBRIDGE_BIN (default target/release/regbridge), BENCH_STORAGE (fs, or s3: moto from the test
# venv, started here), BENCH_REPOS (100000), BENCH_TAGS (100000), BENCH_SMALL (100), BENCH_RUNS (21),
# BENCH_DIR (/tmp/regbridge-bench-scale), REGBRIDGE_TEST_VENV (/tmp/regbridge-test-venv, holding moto_server).
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SELF=scale.sh
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

W=${BENCH_DIR:-/tmp/regbridge-bench-scale}
RB_BIN=${REGBRIDGE_BIN:-target/release/regbridge}
VENV=${REGBRIDGE_TEST_VENV:-/tmp/regbridge-test-venv}
STORAGE=${BENCH_STORAGE:-fs}
REPOS=${BENCH_REPOS:-100000}
TAGS=${BENCH_TAGS:-100000}
SMALL=${BENCH_SMALL:-100}
RUNS=${BENCH_RUNS:-21}
SERVERS=(regbridge)
LABEL[regbridge]=regbridge
CRED_OF[regbridge]="admin:$(random_hex 12)"
check_counts REPOS TAGS SMALL RUNS
[ "$REPOS" -ge "$SMALL" ] && [ "$TAGS" -ge "$SMALL" ] || die "BENCH_REPOS and BENCH_TAGS must be at least BENCH_SMALL"
require_tools curl python3
find_regbridge ""
setup_scratch
EXTRA_PIDS=()
cleanup() { stop_servers; local p; for p in "${EXTRA_PIDS[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT

SERVE_ARGS=()
case "$STORAGE" in
  fs) ;;
  s3)
    [ -x "$VENV/bin/moto_server" ] || die "moto_server not found in $VENV: run scripts/install-test-deps.sh"
    MOTO_PORT=$(free_port)
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "$W/work/moto.log" 2>&1 &
    EXTRA_PIDS+=($!)
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break; sleep 0.2; done
    curl -sf -o /dev/null -X PUT "http://127.0.0.1:$MOTO_PORT/scale" || die "could not create the bucket in moto"
    cat > "$W/work/scale.toml" <<TOML
[storage]
url = "s3://scale/registry"
endpoint = "http://127.0.0.1:$MOTO_PORT"
allow_http = true
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
TOML
    SERVE_ARGS=(--config "$W/work/scale.toml");;
  *) die "BENCH_STORAGE must be fs or s3 (got '$STORAGE')";;
esac

client() { python3 "$HERE/scale-client.py" "$(base regbridge)" "$(cred regbridge)" "$@"; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/${PID[regbridge]}/status"; }

# measure LABEL REPOS TAGS: one row per request ("LABEL<TAB>request<TAB>ms<TAB>entries"), then RSS
measure() {
  local label=$1 repos=$2 tags=$3 late_repo late_tag
  late_repo=$(printf 'scale/r%06d' $(( repos > 150 ? repos - 150 : 0 )))
  late_tag=$(printf 't%06d' $(( tags > 150 ? tags - 150 : 0 )))
  client time "$RUNS" \
    "/v2/_catalog?n=100" "/v2/_catalog?n=100&last=$late_repo" \
    "/v2/scale-tags/app/tags/list?n=100" "/v2/scale-tags/app/tags/list?n=100&last=$late_tag" \
    "/v2/scale/r$(printf %06d $(( repos / 2 )))/manifests/v1" > "$W/work/times.tsv"
  paste <(printf '%s\n' "first catalog page" "late catalog page (last=$late_repo)" "first tag page" \
            "late tag page (last=$late_tag)" "manifest GET by tag") "$W/work/times.tsv" |
    awk -F'\t' -v l="$label" '{printf "%s\t%s\t%s\t%s\n", l, $1, $3, $4}' >> "$W/work/results.tsv"
  printf '%s\t%s\t%s\t%s\n' "$label" "server RSS (MiB)" "$(rss_mib)" "-" >> "$W/work/results.tsv"
}

echo "== machine: $(nproc) cores, $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), storage $STORAGE, scratch $W ($(df -PT "$W" | awk 'NR==2 {print $2}'))"
echo "regbridge: $RB_BIN"
: > "$W/work/results.tsv"
start_regbridge "${SERVE_ARGS[@]}"

client fill scale 0 "$SMALL"
client tags scale-tags/app 0 "$SMALL"
measure "$SMALL/$SMALL" "$SMALL" "$SMALL"

echo "filling to $REPOS repositories and $TAGS tags (a few minutes on fs)" >&2
client fill scale "$SMALL" "$REPOS"
client tags scale-tags/app "$SMALL" "$TAGS"
measure "$REPOS/$TAGS" "$REPOS" "$TAGS"

stop_pid "${PID[regbridge]}"
start_regbridge "${SERVE_ARGS[@]}"
measure "$REPOS/$TAGS, restarted" "$REPOS" "$TAGS"

REBUILD=-
if [ "$STORAGE" = fs ]; then
  stop_pid "${PID[regbridge]}"
  rm -f "$W/regbridge/data/storage/index.sqlite" "$W/regbridge/data/storage/index.sqlite-wal" \
        "$W/regbridge/data/storage/index.sqlite-shm"
  t0=$(now)
  start_regbridge "${SERVE_ARGS[@]}"
  REBUILD=$(fmt "$(calc "$(now) - $t0")" 1)
  # The rebuilt index lists exactly what was pushed.
  client time 1 "/v2/_catalog?n=100&last=$(printf 'scale/r%06d' $(( REPOS - 2 )))" | awk -F'\t' '$3 != 1 { exit 1 }' \
    || fail regbridge "the rebuilt index does not end with the last repository pushed"
fi

echo
printf '%-26s %-44s %10s %8s\n' "entries (repos/tags)" "request (median of $RUNS)" "ms" "listed"
awk -F'\t' '{printf "%-26s %-44s %10s %8s\n", $1, $2, $3, $4}' "$W/work/results.tsv"
echo "index rebuilt at start-up from $REPOS repositories and $TAGS tags: $REBUILD s (until GET /v2/ answers)"
