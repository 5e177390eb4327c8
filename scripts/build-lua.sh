#!/bin/sh
# Build the Lua module once per Lua ABI and lay each out as dist/<abi>/sonoran.so.
#
#   scripts/build-lua.sh            # lua54, luajit and lua51
#   scripts/build-lua.sh luajit     # only the ABIs named
#
# The builds share target/lua (dependencies compile once) and never touch target/release,
# whose libsonoran.so stays free of Lua symbols for C hosts.
set -eu
cd "$(dirname "$0")/.."

abis="${*:-lua54 luajit lua51}"
for abi in $abis; do
    case "$abi" in
        lua54 | luajit | lua51) ;;
        *) echo "build-lua.sh: unknown Lua ABI '$abi' (expected lua54, luajit or lua51)" >&2; exit 2 ;;
    esac
    echo "==> building the Lua module for $abi" >&2
    cargo build --release --features "$abi" --target-dir target/lua
    mkdir -p "dist/$abi"
    # Copy to a temporary name and rename, so a server that has the module loaded keeps its
    # mapping of the old file instead of seeing it rewritten in place.
    cp target/lua/release/libsonoran.so "dist/$abi/sonoran.so.tmp"
    mv -f "dist/$abi/sonoran.so.tmp" "dist/$abi/sonoran.so"
    echo "    dist/$abi/sonoran.so" >&2
done
