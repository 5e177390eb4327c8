#!/usr/bin/env bash
# Debian packages the tests and benchmarks need: the three Lua interpreters, LuaSocket (the
# benchmark's blocking baseline), valgrind, a C and C++ compiler, binutils (nm).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    lua5.4 luajit lua5.1 lua-socket valgrind gcc g++ binutils ca-certificates luarocks liblua5.4-dev liblua5.1-0-dev libluajit-5.1-dev pkg-config libssl-dev minetest-server openssl redis-server >/dev/null
# The packaging tests (tests/packaging.rs) need, from the list above: luarocks, with the Lua 5.4
# and 5.1 headers (its build step looks for lua.h even though the rock compiles no C),
# pkg-config, binutils' readelf, and OpenSSL's headers to build cargo-c; and cargo-c itself
# (`cargo cinstall`), installed here when missing. 0.10.24 is the newest cargo-c that builds
# with Rust 1.95 (0.10.25 needs 1.96, 0.10.26 needs 1.97).
if ! cargo cinstall --version >/dev/null 2>&1; then
    echo "installing cargo-c (cargo cinstall); it compiles for several minutes" >&2
    cargo install cargo-c --locked --version 0.10.24
fi
# The packages above that ship a service (redis-server, minetest-server) start it where systemd
# runs; the tests start their own servers on free loopback ports, so stop and disable those.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now redis-server minetest-server >/dev/null 2>&1 || true
fi
