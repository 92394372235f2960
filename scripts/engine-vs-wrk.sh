#!/usr/bin/env bash
# The load engine against wrk, closed loop, same connections and threads, in alternation:
# requests per second and generator CPU per request of each, against baseline and jwt.
#
#   scripts/engine-vs-wrk.sh [ROUNDS] [SECONDS]     # default: 3 rounds of 5 s
#
# Each round runs the engine (authbench load --scenario steady, one repetition) and then wrk
# (with the same bearer token) against the same server. wrk's CPU is its user+system time from
# time(1), divided by the requests it reports. Prints one line per round (with the ratio of the
# two runs of that round, which share the machine's state) and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-5}
conns=64
threads=$(nproc)
[ "$threads" -gt 4 ] && threads=4
command -v wrk >/dev/null || { echo "engine-vs-wrk.sh: wrk not found: run scripts/setup.sh" >&2; exit 1; }
cargo build --release -q -p authbench -p authbench-server
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT

start_server() { # strategy port
    ./target/release/authbench-server --strategy "$1" --listen "127.0.0.1:$2" --users 20 \
        --admin-key authbench-admin >"$out/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$2/healthz" >/dev/null && return; sleep 0.1; done
    echo "engine-vs-wrk.sh: $1 did not start: $(tail -1 "$out/$1.log")" >&2
    exit 1
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for strategy in baseline jwt; do
    port=$((18500 + RANDOM % 1000))
    start_server "$strategy" "$port"
    url="http://127.0.0.1:$port"
    token=$(curl -sf -X POST "$url/login" -H 'content-type: application/json' \
        -d '{"username":"user0","password":"authbench-password"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    header=()
    [ -n "$token" ] && header=(-H "Authorization: Bearer $token")
    : >"$out/engine" && : >"$out/wrk" && : >"$out/engine_cpu" && : >"$out/wrk_cpu" && : >"$out/ratio"
    for round in $(seq "$rounds"); do
        ./target/release/authbench load --target "$url" --scenario steady --repetitions 1 \
            --duration "${secs}s" --connections "$conns" --out "$out/runs" --quiet --json >"$out/r.json"
        read -r rps cpu < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runs"][0]; print(r["throughput_rps"]["median"], r["generator_cpu_us_per_request"])' "$out/r.json")
        echo "$rps" >>"$out/engine"; echo "$cpu" >>"$out/engine_cpu"
        /usr/bin/time -f '%U %S' -o "$out/time" wrk "-t$threads" "-c$conns" "-d${secs}s" "${header[@]}" "$url/me" >"$out/w.txt"
        reqs=$(awk '/requests in/ {print $1}' "$out/w.txt")
        wrps=$(awk '/Requests\/sec:/ {print $2}' "$out/w.txt")
        wcpu=$(awk -v n="$reqs" '{print ($1 + $2) * 1e6 / (n > 0 ? n : 1)}' "$out/time")
        echo "$wrps" >>"$out/wrk"; echo "$wcpu" >>"$out/wrk_cpu"
        ratio=$(python3 -c "print($rps/$wrps)"); echo "$ratio" >>"$out/ratio"
        printf '%-8s round %d  engine %8.0f req/s %5.1f µs/req   wrk %8.0f req/s %5.1f µs/req   engine/wrk %.2f\n' \
            "$strategy" "$round" "$rps" "$cpu" "$wrps" "$wcpu" "$ratio"
    done
    e=$(median <"$out/engine"); w=$(median <"$out/wrk")
    printf '%-8s median   engine %8.0f req/s %5.1f µs/req   wrk %8.0f req/s %5.1f µs/req   engine/wrk %.2f (median of the rounds: %.2f)\n' \
        "$strategy" "$e" "$(median <"$out/engine_cpu")" "$w" "$(median <"$out/wrk_cpu")" "$(python3 -c "print($e/$w)")" "$(median <"$out/ratio")"
done
