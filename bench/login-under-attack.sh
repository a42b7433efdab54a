#!/usr/bin/env bash
# bench/login-under-attack.sh -- how long a correct, uncached Basic login takes while a client guesses passwords.
#
# This is a benchmark, not a test: it prints numbers and does not pass or fail on them.
#
# regbridge (REGBRIDGE_BIN) runs on 127.0.0.1 with a fresh data directory. BENCH_GUESSES wrong-password
# `GET /v2/` requests for the admin are sent at once from 127.0.0.2 (curl --interface); 0.3 s later the admin
# logs in with the right password from 127.0.0.1, which no request has verified before (so argon2 runs for
# it). Printed: the correct login's time, the guesses' statuses (429 = turned away before argon2) and how
# long the guesses took to be answered. BENCH_RUNS rounds, each on a fresh server.
#
# Environment:
#   REGBRIDGE_BIN    regbridge binary (default target/release/regbridge)
#   BENCH_GUESSES    wrong-password requests per round (default 300)
#   BENCH_RUNS       rounds (default 3)
# Tools: curl
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${REGBRIDGE_BIN:-$ROOT/target/release/regbridge}
GUESSES=${BENCH_GUESSES:-300}
RUNS=${BENCH_RUNS:-3}
PASSWORD=bench-login-$RANDOM$RANDOM
[ -x "$BIN" ] || { echo "regbridge binary not found at $BIN (cargo build --release, or set REGBRIDGE_BIN)" >&2; exit 3; }
command -v curl >/dev/null || { echo "missing tool: curl" >&2; exit 3; }
W=$(mktemp -d /tmp/regbridge-login-bench.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

for run in $(seq 1 "$RUNS"); do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REGBRIDGE_ADMIN_PASSWORD=$PASSWORD REGBRIDGE_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" \
    --data-dir "$W/data-$run" >"$W/server-$run.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
  URL=http://127.0.0.1:$PORT/v2/
  start=$(date +%s.%N)
  guessers=()
  for i in $(seq 1 "$GUESSES"); do
    curl -s -o /dev/null -w '%{http_code}\n' --interface 127.0.0.2 -u "admin:guess-$i" "$URL" >>"$W/guesses-$run" &
    guessers+=($!)
  done
  sleep 0.3
  login=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -u "admin:$PASSWORD" "$URL")
  wait "${guessers[@]}" || true
  guesses_done=$(echo "$(date +%s.%N) - $start" | bc)
  statuses=$(sort "$W/guesses-$run" | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  printf 'run %d: correct login %s s (status %s); %d guesses: %s answered within %.1f s\n' \
    "$run" "${login#* }" "${login%% *}" "$GUESSES" "$statuses" "$guesses_done"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
