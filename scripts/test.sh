#!/usr/bin/env bash
# The test suite: setup, formatting, lints, then every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests build what they run (debug binaries); the release build is bench.sh's.
AUTHBENCH_SKIP_RELEASE_BUILD=1 scripts/setup.sh
# The report test opens report.html in headless Chromium; here it may not be skipped.
if ! command -v chromium >/dev/null 2>&1; then
    echo "test: installing chromium (for the report's browser test)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
export AUTHBENCH_REQUIRE_CHROMIUM=1
echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "test: cargo test"
cargo test --workspace --quiet
