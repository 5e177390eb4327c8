#!/usr/bin/env bash
# Debian packages the tests and benchmarks need: the three Lua interpreters, LuaSocket (the
# benchmark's blocking baseline), valgrind, a C and C++ compiler, binutils (nm).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    lua5.4 luajit lua5.1 lua-socket valgrind gcc g++ binutils ca-certificates >/dev/null
