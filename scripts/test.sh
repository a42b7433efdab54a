#!/usr/bin/env bash
# Runs every test of regbridge: installs the real clients the tests drive (skopeo, podman, oras-py, ...)
# when they are missing, then the whole workspace's tests with every feature.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/install-test-deps.sh ]; then
  scripts/install-test-deps.sh
fi
cargo test --workspace --all-features
scripts/check-packaging.sh
