#!/usr/bin/env bash
# Installs what authbench needs and is missing (redis-server, wrk, PostgreSQL), then builds in
# release.
# Idempotent: on a machine that has everything it only builds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

need_pkgs=()
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
# PostgreSQL's server binaries live under /usr/lib/postgresql/<version>/bin on Debian, not on PATH.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
[ -n "$(pg_bin)" ] || command -v initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)

if ((${#need_pkgs[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${need_pkgs[*]} and no apt-get here: install them with your package manager, then rerun"
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            say "missing ${need_pkgs[*]}: run 'apt-get install ${need_pkgs[*]}' as root, then rerun"
            exit 1
        fi
    fi
    say "installing ${need_pkgs[*]} with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    # The packages start a system Redis on 6379 and a system PostgreSQL on 5432; authbench
    # starts its own on free ports (PostgreSQL as the package's unprivileged `postgres` user).
fi

command -v redis-server >/dev/null 2>&1 || { say "redis-server is still not on PATH"; exit 1; }
say "$(redis-server --version | cut -d' ' -f1-3)"
if [ -n "$(pg_bin)" ]; then
    say "$("$(pg_bin)/postgres" --version)"
elif command -v postgres >/dev/null 2>&1; then
    say "$(postgres --version)"
else
    say "PostgreSQL is still not installed"
    exit 1
fi

if [ "${AUTHBENCH_SKIP_RELEASE_BUILD:-0}" != 1 ]; then
    say "building release binaries"
    cargo build --release --workspace --bins --quiet
fi
