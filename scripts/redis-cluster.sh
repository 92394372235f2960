#!/usr/bin/env bash
# A local three-master Redis Cluster on loopback, for `authbench run --redis-cluster` and for
# pointing an authbench server at a cluster. Nodes listen on 127.0.0.1 only, ever.
#
#   scripts/redis-cluster.sh start  [BASE_PORT]   # ports BASE..BASE+2 (default 7301); prints the URLs
#   scripts/redis-cluster.sh stop   [BASE_PORT]   # shuts the nodes down, removes their state
#   scripts/redis-cluster.sh status [BASE_PORT]   # exit 0 when healthy, 1 otherwise
#   scripts/redis-cluster.sh flush  [BASE_PORT]   # FLUSHALL on every master
#
# State (nodes.conf, redis.pid, redis.log) lives in one subdirectory per port of
# ${AUTHBENCH_CLUSTER_DIR:-/tmp/authbench-redis-cluster}. `start` prints one line per node and
# then `cluster: redis://127.0.0.1:BASE,redis://127.0.0.1:BASE+1,redis://127.0.0.1:BASE+2` on
# stdout (the same when that cluster is already running); progress goes to stderr.
set -euo pipefail

HOST=127.0.0.1                # loopback only, ever
DEFAULT_BASE=7301
NODE_WAIT=10                  # seconds for each redis-server to answer
HEALTH_WAIT=20                # seconds for the new cluster to reach cluster_state:ok
MARK=.authbench-redis-cluster # marks a port directory as made by this script

say() { printf 'redis-cluster: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}
usage() {
    cat >&2 <<EOF
usage: scripts/redis-cluster.sh start|stop|status|flush [BASE_PORT]
  start   start a three-master Redis Cluster on $HOST:BASE..BASE+2 (default $DEFAULT_BASE) and print its URLs
  stop    shut its nodes down and remove their state (fine when nothing runs)
  status  print the cluster state and nodes; exit 0 when healthy, 1 otherwise
  flush   FLUSHALL on every master
state: \${AUTHBENCH_CLUSTER_DIR:-/tmp/authbench-redis-cluster}/PORT
EOF
    exit 2
}

cmd="${1:-}"
case "$cmd" in
start | stop | status | flush) ;;
*) usage ;;
esac
(($# <= 2)) || usage
BASE="${2:-$DEFAULT_BASE}"
# The cluster bus listens on port + 10000, so the last node's bus port must stay below 65536.
if ! [[ $BASE =~ ^[0-9]{1,5}$ ]] || ((10#$BASE < 1024 || 10#$BASE > 55533)); then
    say "BASE_PORT must be a number from 1024 to 55533 (the cluster bus uses port + 10000), not '$BASE'"
    exit 2
fi
BASE=$((10#$BASE))
PORTS=("$BASE" "$((BASE + 1))" "$((BASE + 2))")

for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is missing: run scripts/setup.sh (or apt-get install redis-server redis-tools)"
done

ROOT="${AUTHBENCH_CLUSTER_DIR:-/tmp/authbench-redis-cluster}"
case "$ROOT" in
/*) ;;
*) ROOT="$PWD/$ROOT" ;; # redis-server chdirs to --dir, so every path it gets is absolute
esac
ROOT="${ROOT%/}"
[ -n "$ROOT" ] || die "AUTHBENCH_CLUSTER_DIR must not be /"

# One start, stop or flush at a time (tests may call this concurrently): a second `start` then
# finds the first one's cluster running instead of racing it for the ports and pidfiles.
if [ "$cmd" != status ] && command -v flock >/dev/null 2>&1; then
    exec 9<"${BASH_SOURCE[0]}" # closed for redis-server, which would otherwise hold the lock
    flock -w 120 9 || die "another scripts/redis-cluster.sh is still busy after 120s"
fi

# redis-cli against one node of ours, bounded in time (a frozen node must not hang the script).
rcli() {
    local port="$1"
    shift
    timeout --foreground 3 redis-cli -h "$HOST" -p "$port" "$@" 2>/dev/null | tr -d '\r'
}

# Whether process $1 is alive: a zombie is not (it waits for init to reap it, which can take
# a second, and no longer listens).
alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/stat" ]; then
        st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)"
    else
        st="$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)"
    fi
    [ -n "$st" ] && [ "$st" != Z ]
}

# The pid a node of ours wrote to its pidfile, when that process is alive and is a redis-server.
our_pid() {
    local f="$ROOT/$1/redis.pid" pid comm
    [ -f "$f" ] || return 1
    pid="$(head -c 20 "$f" | tr -dc 0-9)"
    [ -n "$pid" ] && alive "$pid" || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || ps -o comm= -p "$pid" 2>/dev/null || true)"
    [ "$comm" = redis-server ] || return 1
    printf '%s\n' "$pid"
}

# The pid of whatever redis answers on a port (empty when nothing does).
node_pid() { rcli "$1" info server | sed -n 's/^process_id://p' || true; }

# Whether the redis answering on a port is the process this script started there.
is_ours() {
    local pid
    pid="$(our_pid "$1")" || return 1
    [ "$(node_pid "$1")" = "$pid" ]
}

# Whether anything accepts connections on 127.0.0.1:PORT.
port_busy() { timeout --foreground 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# Healthy: every node answers, sees cluster_state:ok with all 16384 slots, and the first node
# sees the three of them connected.
healthy() {
    local p info nodes
    for p in "${PORTS[@]}"; do
        info="$(rcli "$p" cluster info || true)"
        grep -qx 'cluster_state:ok' <<<"$info" || return 1
        grep -qx 'cluster_slots_assigned:16384' <<<"$info" || return 1
    done
    nodes="$(rcli "$BASE" cluster nodes || true)"
    for p in "${PORTS[@]}"; do
        awk -v a="$HOST:$p@" 'index($2, a) == 1 && $3 !~ /fail/ && $8 == "connected" { ok = 1 } END { exit !ok }' \
            <<<"$nodes" || return 1
    done
}

# One line per node, as the node itself sees it: address, role, slots, pid.
print_nodes() {
    local p pid line
    for p in "${PORTS[@]}"; do
        pid="$(node_pid "$p")"
        if [ -z "$pid" ]; then
            echo "node $HOST:$p not answering"
            continue
        fi
        line="$(rcli "$p" cluster nodes | awk '$3 ~ /myself/ {
            role = ($3 ~ /master/) ? "master" : (($3 ~ /slave/) ? "replica" : $3)
            slots = ""
            for (i = 9; i <= NF; i++) slots = slots (slots == "" ? "" : ",") $i
            printf "%s slots %s", role, (slots == "" ? "none" : slots)
        }' || true)"
        echo "node $HOST:$p ${line:-not a cluster node} pid $pid"
    done
}

print_urls() {
    local p urls=()
    for p in "${PORTS[@]}"; do urls+=("redis://$HOST:$p"); done
    local IFS=,
    echo "cluster: ${urls[*]}"
}

# Waits up to $2 seconds for process $1 to end.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    ! alive "$1"
}

# Removes a port's state directory, only when this script made it (or it is empty).
remove_dir() {
    local d="$ROOT/$1"
    [ -e "$d" ] || return 0
    if [ -f "$d/$MARK" ]; then rm -rf -- "$d"; elif rmdir -- "$d" 2>/dev/null; then :; else
        say "$d was not made by this script; left in place"
        return 1
    fi
}

# Stops the node of ours on a port (quietly when $2 is "quiet"); never touches anyone else's.
STOPPED=0
stop_node() {
    local p="$1" quiet="${2:-}" pid
    if pid="$(our_pid "$p")"; then
        if [ "$(node_pid "$p")" = "$pid" ]; then
            rcli "$p" shutdown nosave >/dev/null || true
            wait_gone "$pid" 5 || true
        fi
        if alive "$pid"; then # not answering (frozen?) or shutdown did not end it
            kill -TERM "$pid" 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true # in case it was frozen with SIGSTOP
            wait_gone "$pid" 3 || { kill -KILL "$pid" 2>/dev/null || true; }
            wait_gone "$pid" 2 || die "could not stop redis-server pid $pid on port $p"
        fi
        STOPPED=$((STOPPED + 1))
        [ "$quiet" = quiet ] || say "stopped $HOST:$p (pid $pid)"
    elif [ "$quiet" != quiet ] && port_busy "$p"; then
        say "$HOST:$p is in use but not by a node this script started (no live pidfile in $ROOT/$p); left alone"
        remove_dir "$p" || true
        return 1
    fi
    remove_dir "$p"
}

# A failed or interrupted start leaves nothing behind: stops the nodes it launched (and only
# those), then fails with one line.
STARTED=()
abort_start() {
    local p i
    trap - INT TERM HUP
    for p in "${STARTED[@]}"; do # a node just launched may not have written its pidfile yet
        for ((i = 0; i < 20; i++)); do
            [ -s "$ROOT/$p/redis.pid" ] || grep -qs 'aborting' "$ROOT/$p/redis.log" && break
            sleep 0.1
        done
    done
    for p in "${STARTED[@]}"; do stop_node "$p" quiet || true; done
    rmdir "$ROOT" 2>/dev/null || true
    die "$*"
}

# Why a node did not come up, from its log (bind errors name the port themselves).
node_failure() {
    local log="$ROOT/$1/redis.log" line=""
    [ -f "$log" ] && line="$(grep -E '^[0-9]+:[A-Z] .* # ' "$log" | tail -n 1 | sed 's/^.* # //')"
    printf '%s' "${line:-no answer within ${NODE_WAIT}s, see $log}"
}

cmd_start() {
    local p d pid up=0 i log state
    trap 'abort_start "interrupted"' INT TERM HUP
    if [ -L "$ROOT" ] || { [ -e "$ROOT" ] && ! { [ -d "$ROOT" ] && [ -O "$ROOT" ]; }; }; then
        die "$ROOT is not a directory owned by $(id -un); set AUTHBENCH_CLUSTER_DIR to another place"
    fi

    for p in "${PORTS[@]}"; do
        if our_pid "$p" >/dev/null; then up=$((up + 1)); fi
    done
    if ((up == 3)) && healthy && is_ours "${PORTS[0]}" && is_ours "${PORTS[1]}" && is_ours "${PORTS[2]}"; then
        trap - INT TERM HUP
        say "already running and healthy at $HOST:${PORTS[0]}-${PORTS[2]}"
        print_nodes
        print_urls
        return 0
    fi
    if ((up > 0)); then
        die "a cluster from this script is running on ports ${PORTS[0]}-${PORTS[2]} but is not healthy ($up of 3 nodes up); run 'scripts/redis-cluster.sh stop $BASE' first"
    fi

    # Nothing of ours runs: leftovers of a cluster that died are stale, and the ports must be free.
    for p in "${PORTS[@]}"; do
        remove_dir "$p" || die "remove $ROOT/$p or set AUTHBENCH_CLUSTER_DIR to another place"
    done
    for p in "${PORTS[@]}"; do
        if port_busy "$p"; then die "port $p on $HOST is already in use by another process"; fi
        if port_busy "$((p + 10000))"; then
            die "port $((p + 10000)) on $HOST (the cluster bus of port $p) is already in use by another process"
        fi
    done

    (umask 077 && mkdir -p "$ROOT")
    for p in "${PORTS[@]}"; do
        d="$ROOT/$p"
        mkdir -p "$d"
        : >"$d/$MARK"
        say "starting redis-server on $HOST:$p"
        STARTED+=("$p")
        redis-server --port "$p" --bind "$HOST" --protected-mode yes \
            --cluster-enabled yes --cluster-config-file "$d/nodes.conf" --dir "$d" \
            --save '' --appendonly no \
            --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" >/dev/null 2>&1 9<&- ||
            abort_start "port $p: redis-server did not start: $(node_failure "$p")"
    done
    for p in "${PORTS[@]}"; do
        for ((i = 0; ; i++)); do
            pid="$(our_pid "$p")" && [ "$(node_pid "$p")" = "$pid" ] && break
            if ((i >= NODE_WAIT * 10)) || grep -qs 'aborting' "$ROOT/$p/redis.log"; then
                abort_start "port $p: redis-server did not come up: $(node_failure "$p")"
            fi
            sleep 0.1
        done
    done

    say "creating the cluster"
    log="$ROOT/$BASE/cluster-create.log"
    if ! timeout --foreground 60 redis-cli --cluster create "$HOST:${PORTS[0]}" "$HOST:${PORTS[1]}" "$HOST:${PORTS[2]}" \
        --cluster-replicas 0 --cluster-yes >"$log" 2>&1; then
        abort_start "redis-cli --cluster create failed: $(grep -E 'ERR|rror' "$log" | tail -n 1 || true)"
    fi

    for ((i = 0; ; i++)); do
        healthy && break
        if ((i >= HEALTH_WAIT * 10)); then
            state="$(rcli "$BASE" cluster info | sed -n 's/^cluster_state://p' || true)"
            abort_start "the cluster did not become healthy within ${HEALTH_WAIT}s (cluster_state:${state:-no answer})"
        fi
        sleep 0.1
    done
    trap - INT TERM HUP
    print_nodes
    print_urls
}

cmd_stop() {
    local p rc=0
    for p in "${PORTS[@]}"; do stop_node "$p" || rc=1; done
    ((STOPPED > 0 || rc != 0)) || say "nothing running on $HOST:${PORTS[0]}-${PORTS[2]}"
    rmdir "$ROOT" 2>/dev/null || true # only when no other cluster's state is left in it
    return "$rc"
}

cmd_status() {
    local info state
    info="$(rcli "$BASE" cluster info || true)"
    state="$(sed -n 's/^cluster_state://p' <<<"$info")"
    if [ -z "$state" ]; then
        if [ -n "$(node_pid "$BASE")" ]; then state="none ($HOST:$BASE is not a cluster node)"; else
            state="down (nothing answers on $HOST:$BASE)"
        fi
    fi
    echo "cluster_state: $state"
    print_nodes
    if healthy; then
        print_urls
        return 0
    fi
    echo "not healthy: every node must answer and see cluster_state:ok with all 16384 slots"
    return 1
}

cmd_flush() {
    local p pid role reply
    # Only nodes this script started: FLUSHALL on someone else's Redis would be a disaster.
    for p in "${PORTS[@]}"; do
        pid="$(our_pid "$p")" || die "$HOST:$p is not a node this script started (no live pidfile in $ROOT/$p); nothing flushed"
        [ "$(node_pid "$p")" = "$pid" ] || die "$HOST:$p does not answer as redis-server pid $pid; nothing flushed"
    done
    for p in "${PORTS[@]}"; do
        role="$(rcli "$p" role | head -n 1 || true)"
        if [ "$role" != master ]; then
            echo "skipped $HOST:$p ($role)"
            continue
        fi
        reply="$(rcli "$p" flushall || true)"
        [ "$reply" = OK ] || die "FLUSHALL on $HOST:$p failed: ${reply:-no answer}"
        echo "flushed $HOST:$p"
    done
}

"cmd_$cmd"
