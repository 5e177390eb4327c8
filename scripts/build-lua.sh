#!/bin/sh
# Build the Lua module once per Lua ABI and lay each out as dist/<abi>/sonoran.so.
#
#   scripts/build-lua.sh            # lua54, luajit and lua51
#   scripts/build-lua.sh luajit     # only the ABIs named
#   scripts/build-lua.sh gmod       # Garry's Mod: dist/gmod/gmsv_sonoran_linux64.dll
#
# gmod is the LuaJIT build with Garry's Mod's entry points (gmod13_open / gmod13_close), named
# as the 64-bit server loads it from garrysmod/lua/bin/ (an ELF shared object, whatever the
# .dll says).
#
# The builds share target/lua (dependencies compile once) and never touch target/release,
# whose libsonoran.so stays free of Lua symbols for C hosts.
set -eu
cd "$(dirname "$0")/.."

abis="${*:-lua54 luajit lua51}"
for abi in $abis; do
    case "$abi" in
        lua54 | luajit | lua51) file=sonoran.so ;;
        gmod) file=gmsv_sonoran_linux64.dll ;;
        *) echo "build-lua.sh: unknown Lua ABI '$abi' (expected lua54, luajit, lua51 or gmod)" >&2; exit 2 ;;
    esac
    echo "==> building the Lua module for $abi" >&2
    cargo build --release --features "$abi" --target-dir target/lua
    mkdir -p "dist/$abi"
    # Copy to a temporary name and rename, so a server that has the module loaded keeps its
    # mapping of the old file instead of seeing it rewritten in place.
    cp target/lua/release/libsonoran.so "dist/$abi/$file.tmp"
    mv -f "dist/$abi/$file.tmp" "dist/$abi/$file"
    echo "    dist/$abi/$file" >&2
done
