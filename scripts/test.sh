#!/usr/bin/env bash
# Runs every test of regbridge: installs the real clients the tests drive (skopeo, podman, oras-py, ...)
# when they are missing, then the whole workspace's tests with every feature.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/install-test-deps.sh ]; then
  scripts/install-test-deps.sh
fi
cargo test --workspace --all-features
# The library examples against the local provider (the cloud one needs credentials and is built above).
cargo run -q -p regbridge-providers --example local_provider
cargo run -q -p regbridge-providers --example credential_formats
cargo run -q -p regbridge-proxy --example embedded_proxy
scripts/check-packaging.sh
