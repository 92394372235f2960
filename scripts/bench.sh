#!/usr/bin/env bash
# The main job: runs the default suite and leaves a report under results/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
exec ./target/release/authbench run --suite default "$@"
