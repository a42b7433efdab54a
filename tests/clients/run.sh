#!/usr/bin/env bash
# run.sh HOST:PORT USER PASS
#
# Real-client acceptance run against a registry that demands credentials over plain HTTP: skopeo, podman
# and oras-py push, pull, tag, copy across repositories and delete, and every digest is checked.
# Install the clients first with scripts/install-test-deps.sh (as root).
#
# Prints one PASS/FAIL/SKIP line per check; stops at the first failure (printing the failing command and
# its output) unless KEEP_GOING=1. The last line is always "N passed, M failed, K skipped"; the exit
# status is 0 only when nothing failed.
#
# Environment (all optional):
#   KEEP_GOING=1               do not stop at the first failure
#   KEEP_SCRATCH=1             keep the scratch dir even on success (it is always kept on failure)
#   REGBRIDGE_TEST_VENV=DIR    venv with oras-py (default /tmp/regbridge-test-venv, as the installer makes)
#   REGBRIDGE_TEST_TIMEOUT=S   per-command time limit (default 300)
#   REGBRIDGE_TEST_NS_PREFIX=P  put the run's repositories under P (e.g. "hub/" to go through a proxy route)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
INSTALL_HINT="run $ROOT/scripts/install-test-deps.sh as root"
if [ $# -ne 3 ]; then echo "usage: $0 HOST:PORT USER PASS" >&2; exit 2; fi
REG=$1 USER_=$2 PASS_=$3
VENV=${REGBRIDGE_TEST_VENV:-/tmp/regbridge-test-venv}
TMO=${REGBRIDGE_TEST_TIMEOUT:-300}
KEEP_GOING=${KEEP_GOING:-0}
NS=${REGBRIDGE_TEST_NS_PREFIX:-}rb$(date +%s)$$   # fresh namespace: no run sees another run's repositories or tags
STARTED=$SECONDS
PASSED=0 FAILED=0 SKIPPED=0

# ---------------------------------------------------------------- reporting
summary() {  # the counts line must stay the very last line of the output
  echo "elapsed $((SECONDS - STARTED))s, namespace $NS"
  if [ "$FAILED" != 0 ] || [ "${KEEP_SCRATCH:-0}" = 1 ]; then echo "scratch (logs of every command) kept: $WORK"; fi
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
}
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "SKIP $1: $2"; }
fail() {  # fail CHECK WHY : shows the last command's output, then stops unless KEEP_GOING=1
  FAILED=$((FAILED + 1))
  echo "FAIL $1: $2"
  if [ -n "$LAST" ] && [ -f "$LAST.cmd" ]; then
    local cmd; cmd=$(cat "$LAST.cmd")
    echo "  -- command: ${cmd//"$PASS_"/***}"   # the password stays out of CI logs
    [ -s "$LAST.err" ] && tail -n 20 "$LAST.err" | sed 's/^/  stderr| /'
    [ -s "$LAST.out" ] && tail -n 10 "$LAST.out" | cut -c1-300 | sed 's/^/  stdout| /'
  fi
  if [ "$KEEP_GOING" != 1 ]; then summary; exit 1; fi
}
LAST="" OUT=/dev/null ERR=/dev/null

# run NAME CMD... : runs CMD under the time limit; its stdout/stderr land in $OUT/$ERR; returns its status
run() {
  local name=$1; shift
  LAST=$WORK/logs/$name OUT=$WORK/logs/$name.out ERR=$WORK/logs/$name.err
  printf '%q ' "$@" > "$LAST.cmd"
  timeout "$TMO" "$@" > "$OUT" 2> "$ERR"
  local rc=$?
  [ $rc = 124 ] && echo "TIMEOUT: killed after ${TMO}s" >> "$ERR"
  return $rc
}
# check NAME DESCRIPTION CMD... : passes when CMD exits 0
check() {
  local name=$1 desc=$2; shift 2
  if run "$name" "$@"; then pass "$desc"; else fail "$desc" "exit status $?"; fi
}
# equal DESCRIPTION GOT WANT
equal() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', want '$3'"; fi; }
# rejected NAME DESCRIPTION CMD... : passes when CMD fails *because of auth* (not e.g. a refused connection)
rejected() {
  local name=$1 desc=$2; shift 2
  if run "$name" "$@"; then fail "$desc" "the command succeeded"
  elif grep -qiE 'unauthorized|authentication required|denied|invalid username/password|\b401\b' "$ERR"; then
    pass "$desc"
  else fail "$desc" "failed, but not with an authentication error"; fi
}

sha_of() { echo "sha256:$(sha256sum < "$1" | cut -c1-64)"; }

# ---------------------------------------------------------------- prerequisites
missing=()
for tool in skopeo jq curl python3 sha256sum timeout; do command -v "$tool" > /dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  FAILED=1; echo "FAIL prerequisites: missing ${missing[*]} ($INSTALL_HINT)"
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"; exit 1
fi

# ---------------------------------------------------------------- scratch: nothing of the host's is used
WORK=$(mktemp -d /tmp/regbridge-clients.XXXXXX)
PRR=$(mktemp -d /tmp/rbp.XXXX)      # podman's runroot: podman 4.3 rejects paths of 50+ characters
mkdir -p "$WORK/logs" "$WORK/tmp" "$WORK/home" "$WORK/docker"
cleanup() {  # silent: summary() already said whether the scratch dir is kept
  local rc=$?
  rm -rf "$PRR"
  if [ $rc = 0 ] && [ "$FAILED" = 0 ] && [ "${KEEP_SCRATCH:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
export TMPDIR=$WORK/tmp              # skopeo/podman stage blobs here, not in the host's /var/tmp
export HOME=$WORK/home               # no ~/.docker, ~/.config/containers or ~/.dockercfg of the host
export REGISTRY_AUTH_FILE=$WORK/auth.json DOCKER_CONFIG=$WORK/docker   # empty credential stores
echo '{}' > "$REGISTRY_AUTH_FILE"; echo '{}' > "$DOCKER_CONFIG/config.json"
unset XDG_RUNTIME_DIR                # containers/image would also read $XDG_RUNTIME_DIR/containers/auth.json
# Not isolated: skopeo run as root records where it saw each blob in /var/lib/containers/cache (no flag moves
# it). Harmless here: every run pushes fresh random blobs, so only this run's own entries ever match; they
# are what makes skopeo try a cross-repository mount. (podman keeps its cache under --root.)

D=docker://$REG/$NS
SK=(--tls-verify=false --creds "$USER_:$PASS_")               # skopeo inspect/list-tags/delete
SRC=(--src-tls-verify=false --src-creds "$USER_:$PASS_")      # skopeo copy from the registry
DST=(--dest-tls-verify=false --dest-creds "$USER_:$PASS_")    # skopeo copy to the registry

echo "== regbridge client run: registry http://$REG, user $USER_, namespace $NS, scratch $WORK"
echo "   skopeo $(skopeo --version | awk '{print $3}'), podman $(podman --version 2>/dev/null | awk '{print $3}' | grep . || echo missing)," \
     "oras-py $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("oras"))' 2>/dev/null || echo "missing")"

# ---------------------------------------------------------------- the registry demands credentials
run ping curl -sS -D "$WORK/ping.hdr" -o /dev/null -w '%{http_code}' --max-time 30 "http://$REG/v2/"
CHALLENGE=$(tr -d '\r' < "$WORK/ping.hdr" 2>/dev/null | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: *//p' | head -1)
equal "GET /v2/ without credentials -> 401" "$(cat "$OUT")" 401
case "$CHALLENGE" in
  [Bb]asic*|[Bb]earer*) pass "401 carries a challenge: $CHALLENGE";;
  *) fail "401 carries a Basic or Bearer challenge" "WWW-Authenticate: '$CHALLENGE'";;
esac

# api METHOD REPO PATH : raw API call with the run's credentials (Basic, or a Bearer token fetched from the
# challenge's realm); prints the HTTP status, the body goes to $WORK/api.body
api() {
  local method=$1 repo=$2 path=$3 realm service token auth=(-u "$USER_:$PASS_")
  if [[ "$CHALLENGE" =~ ^[Bb]earer ]]; then
    realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<< "$CHALLENGE")
    service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<< "$CHALLENGE")
    token=$(timeout "$TMO" curl -sS -u "$USER_:$PASS_" -G "$realm" --data-urlencode "service=$service" \
              --data-urlencode "scope=repository:$repo:pull,push,delete" | jq -r '.token // .access_token // empty')
    auth=(-H "Authorization: Bearer $token")
  fi
  timeout "$TMO" curl -sS -o "$WORK/api.body" -w '%{http_code}' -X "$method" "${auth[@]}" "http://$REG/v2/$repo/$path"
}

# ---------------------------------------------------------------- test image
IMG=$WORK/image
check make-image "make-image.py: fresh random 2-layer image" python3 "$HERE/make-image.py" "$IMG"
WANT=$(jq -r .manifest "$IMG/expected.json")
WANT_CONFIG=$(jq -r .config "$IMG/expected.json")

# ---------------------------------------------------------------- skopeo
echo "== skopeo"
rejected anon-push "anonymous push is rejected" \
  skopeo copy --dest-tls-verify=false --dest-no-creds "oci:$IMG:v1" "$D/app:v1"
rejected bad-pass "push with a wrong password is rejected" \
  skopeo copy --dest-tls-verify=false --dest-creds "$USER_:wrong-$PASS_" "oci:$IMG:v1" "$D/app:v1"

check push "skopeo copy --preserve-digests oci:image:v1 -> $NS/app:v1" \
  skopeo copy --preserve-digests "${DST[@]}" "oci:$IMG:v1" "$D/app:v1"
run inspect-raw skopeo inspect --raw "${SK[@]}" "$D/app:v1"
equal "skopeo inspect --raw app:v1: manifest digest" "$(sha_of "$OUT")" "$WANT"
run inspect skopeo inspect "${SK[@]}" "$D/app:v1"
equal "skopeo inspect app:v1: .Digest" "$(jq -r .Digest "$OUT" 2>/dev/null)" "$WANT"
equal "skopeo inspect app:v1: .Layers" "$(jq -c .Layers "$OUT" 2>/dev/null)" "$(jq -c .layers "$IMG/expected.json")"

# verify_dir CHECK DIR : a skopeo dir: copy whose manifest has digest $WANT and whose blobs match their names
verify_dir() {
  local check=$1 dir=$2 f name bad=""
  LAST=""
  [ "$(sha_of "$dir/manifest.json")" = "$WANT" ] || { fail "$check" "manifest digest $(sha_of "$dir/manifest.json")"; return; }
  for f in "$dir"/*; do
    name=$(basename "$f")
    [[ "$name" =~ ^[0-9a-f]{64}$ ]] || continue
    [ "$(sha256sum < "$f" | cut -c1-64)" = "$name" ] || bad+=" $name"
  done
  for name in $(jq -r '.config.digest, .layers[].digest' "$dir/manifest.json"); do
    [ -f "$dir/${name#sha256:}" ] || bad+=" missing:$name"
  done
  if [ -z "$bad" ]; then pass "$check"; else fail "$check" "bad blobs:$bad"; fi
}
check pull "skopeo copy $NS/app:v1 -> dir:" skopeo copy "${SRC[@]}" "$D/app:v1" "dir:$WORK/pulled"
verify_dir "pulled app:v1: manifest digest and every blob's sha256 match" "$WORK/pulled"

check tag-v2 "skopeo copy app@digest -> app:v2 (second tag)" skopeo copy "${SRC[@]}" "${DST[@]}" "$D/app@$WANT" "$D/app:v2"
run list-tags skopeo list-tags "${SK[@]}" "$D/app"
equal "skopeo list-tags app: exactly v1,v2" "$(jq -c '.Tags | sort' "$OUT" 2>/dev/null)" '["v1","v2"]'

# --debug only to report whether the cross-repository blob mount was used (distribution and regbridge
# mount; a registry that answers the mount with an upload session still passes)
check cross-repo "skopeo copy $NS/app:v1 -> $NS/other:v1 (cross-repository)" \
  skopeo --debug copy "${SRC[@]}" "${DST[@]}" "$D/app:v1" "$D/other:v1"
echo "   (blob mounts: $(grep -c 'mount OK' "$ERR") done of $(grep -c 'Trying to mount' "$ERR") tried)"
run inspect-other skopeo inspect --raw "${SK[@]}" "$D/other:v1"
equal "other:v1 has the same manifest digest" "$(sha_of "$OUT")" "$WANT"

# ---------------------------------------------------------------- podman
echo "== podman"
if ! command -v podman > /dev/null; then
  LAST=""; fail "podman" "podman is not installed ($INSTALL_HINT)"
else
  # daemonless, all state in the scratch dir; vfs because overlay needs kernel support that containers lack
  PM=(podman --root "$WORK/podman" --runroot "$PRR" --tmpdir "$WORK/tmp" --storage-driver vfs
      --cgroup-manager cgroupfs --events-backend file)
  PAUTH=(--tls-verify=false --authfile "$WORK/podman-auth.json")
  echo '{}' > "$WORK/podman-auth.json"
  P=$REG/$NS
  # the password goes in on stdin (podman warns about -p); $1/$@ expand in the inner bash, hence the quotes
  # shellcheck disable=SC2016
  check podman-login "podman login" bash -c 'printf %s "$1" | "${@:2}"' _ "$PASS_" \
    "${PM[@]}" login "${PAUTH[@]}" -u "$USER_" --password-stdin "$REG"
  check podman-pull "podman pull $NS/app:v1" "${PM[@]}" pull "${PAUTH[@]}" "$P/app:v1"
  run podman-id "${PM[@]}" image inspect --format '{{.Id}}' "$P/app:v1"
  equal "podman image ID is the config digest" "sha256:$(tail -n 1 "$OUT")" "$WANT_CONFIG"
  # podman decompresses layers into its storage, so the push recompresses: digests may change
  check podman-push "podman push --compression-format gzip -> $NS/podman:v1" \
    "${PM[@]}" push "${PAUTH[@]}" --compression-format gzip "$P/app:v1" "$P/podman:v1"
  check podman-rmi "podman rmi (forget local copies)" "${PM[@]}" rmi -f "$P/app:v1"
  check podman-pull-back "podman pull $NS/podman:v1 (what podman pushed)" "${PM[@]}" pull "${PAUTH[@]}" "$P/podman:v1"
  check podman-inspect "skopeo inspect $NS/podman:v1" skopeo inspect "${SK[@]}" "$D/podman:v1"
  echo "   (podman pushed manifest $(jq -r .Digest "$OUT" 2>/dev/null); the original is $WANT)"
  run podman-config skopeo inspect --config --raw "${SK[@]}" "$D/podman:v1"
  equal "podman-pushed image keeps the config digest" "$(sha_of "$OUT")" "$WANT_CONFIG"
  check podman-logout "podman logout" "${PM[@]}" logout --authfile "$WORK/podman-auth.json" "$REG"
  "${PM[@]}" rmi -a -f > /dev/null 2>&1
fi

# ---------------------------------------------------------------- oras-py
echo "== oras-py"
if ! "$VENV/bin/python" -c 'import oras.client' 2> /dev/null; then
  LAST=""; fail "oras-py" "oras-py not importable from $VENV ($INSTALL_HINT)"
else
  check oras "oras-py push artifact.txt (custom artifact type) -> $NS/artifact:v1, pull back, same bytes" \
    env ORAS_USER="$USER_" ORAS_PASS="$PASS_" \
    "$VENV/bin/python" "$HERE/oras-client.py" "$REG" "$NS/artifact" v1 "$IMG/artifact.txt" "$WORK/oras-out"
  sed 's/^/   /' "$OUT"
fi

# ---------------------------------------------------------------- delete
echo "== delete"
# gone CHECK REF : skopeo inspect of REF must now fail with "manifest unknown"
gone() {
  if run "gone-${2##*/}" skopeo inspect --raw "${SK[@]}" "$2"; then fail "$1" "skopeo inspect still succeeds"
  elif grep -qiE 'manifest unknown|not found|name unknown' "$ERR"; then pass "$1"
  else fail "$1" "skopeo inspect failed, but not with manifest unknown"; fi
}
still_there() { check "there-${2##*/}" "$1" skopeo inspect --raw "${SK[@]}" "$2"; }

# Deletes are per repository, although other:v1 shares its manifest and blobs with app:v1.
check delete-other "skopeo delete $NS/other:v1" skopeo delete "${SK[@]}" "$D/other:v1"
gone "other:v1 is gone" "$D/other:v1"
still_there "app:v1 survives a delete in another repository" "$D/app:v1"

# Tag deletion (DELETE /v2/<name>/manifests/<tag>) is optional in the OCI spec. skopeo cannot do it:
# `skopeo delete repo:tag` resolves the tag and deletes the manifest by digest (with every tag on it).
LAST=""
code=$(api DELETE "$NS/app" manifests/v2)
if [ "$code" = 202 ]; then
  pass "DELETE /v2/$NS/app/manifests/v2 (by tag) -> 202"
  gone "app:v2 is gone after deleting the tag" "$D/app:v2"
  still_there "app:v1 (same manifest) survives deleting tag v2" "$D/app:v1"
elif [[ "$code" =~ ^(400|405)$ ]] && grep -qE 'UNSUPPORTED|DIGEST_INVALID' "$WORK/api.body"; then
  skip "DELETE by tag" "registry does not delete tags (HTTP $code $(jq -r '.errors[0].code' "$WORK/api.body" 2>/dev/null))"
else
  fail "DELETE /v2/$NS/app/manifests/v2 (by tag)" "HTTP $code $(head -c 300 "$WORK/api.body" 2>/dev/null)"
fi

check delete-app "skopeo delete $NS/app:v1 (deletes the manifest by digest)" skopeo delete "${SK[@]}" "$D/app:v1"
gone "app:v1 is gone" "$D/app:v1"
gone "app:v2 is gone (it named the same manifest)" "$D/app:v2"
# an empty repository may list [] or be unknown altogether; either way no tag may dangle
if run list-after skopeo list-tags "${SK[@]}" "$D/app"; then
  equal "list-tags app after the delete: no tags" "$(jq -c '.Tags // []' "$OUT" 2>/dev/null)" '[]'
elif grep -qiE 'name unknown|not found' "$ERR"; then pass "list-tags app after the delete: repository unknown"
else fail "list-tags app after the delete" "skopeo list-tags failed"; fi

summary
[ "$FAILED" = 0 ]
