#!/usr/bin/env bash
# The main job: runs the default suite and leaves a report under results/.
#
#   scripts/bench.sh [AUTHBENCH RUN FLAGS...]            # against a redis-server authbench owns
#   scripts/bench.sh --cluster [AUTHBENCH RUN FLAGS...]  # against a local three-master Redis Cluster
#
# With --cluster the script starts the cluster with scripts/redis-cluster.sh, runs against it
# and stops it again, however the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=
if [ "${1:-}" = --cluster ]; then
    cluster=1
    shift
fi

scripts/setup.sh
if [ -z "$cluster" ]; then
    exec ./target/release/authbench run --suite default "$@"
fi

urls=$(scripts/redis-cluster.sh start | sed -n 's/^cluster: //p')
[ -n "$urls" ] || {
    echo "bench.sh: scripts/redis-cluster.sh start printed no cluster URLs" >&2
    exit 1
}
trap 'scripts/redis-cluster.sh stop >/dev/null 2>&1 || true' EXIT
./target/release/authbench run --suite default --redis-cluster "$urls" "$@"
