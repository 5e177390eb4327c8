#!/bin/sh
# The build of sonoran-<version>-1.rockspec (LuaRocks' "command" build type). LuaRocks runs it
# from the repository root with the interpreter it is installing for:
#
#   sh scripts/luarocks-build.sh build   LUA           # cargo builds the module for LUA's ABI
#   sh scripts/luarocks-build.sh install LUA LIBDIR    # copies it to the rock's LIBDIR/sonoran.so
#
# The ABI comes from the interpreter itself (LuaJIT -> luajit, Lua 5.4 -> lua54, Lua 5.1 ->
# lua51), so `luarocks --lua-version=5.4 make` and `luarocks --lua-version=5.1 make` each get
# the build for their interpreter. Cargo builds into target/lua, shared with
# scripts/build-lua.sh (dependencies compile once); the built module is copied to
# target/luarocks/<abi>/sonoran.so. Nothing is written outside target/.
set -eu
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 build LUA | install LUA LIBDIR" >&2
    exit 2
}

[ "$#" -ge 2 ] || usage
step=$1
lua=$2

# The same decision as lua/sonoran_loader.lua's abi(): `jit` means LuaJIT, else _VERSION.
running=$("$lua" -e 'io.write(type(jit) == "table" and "LuaJIT" or _VERSION)') || {
    echo "luarocks-build.sh: could not run the Lua interpreter '$lua'" >&2
    exit 1
}
case "$running" in
    LuaJIT) abi=luajit ;;
    "Lua 5.4") abi=lua54 ;;
    "Lua 5.1") abi=lua51 ;;
    *)
        echo "luarocks-build.sh: no build of sonoran for $running ($lua); builds exist for Lua 5.4, LuaJIT and Lua 5.1" >&2
        exit 1
        ;;
esac
built="target/luarocks/$abi/sonoran.so"

case "$step" in
    build)
        if ! command -v cargo >/dev/null 2>&1; then
            echo "luarocks-build.sh: building sonoran needs Rust's cargo on PATH (at least the rust-version in Cargo.toml)" >&2
            exit 1
        fi
        echo "==> building the Lua module for $abi ($running, $lua)" >&2
        mkdir -p "target/luarocks/$abi"
        for attempt in 1 2; do
            # LuaRocks exports CC for C rocks; cargo's C dependencies would take it as a changed
            # environment and rebuild, so the build sees the same environment as build-lua.sh.
            (unset CC; cargo build --release --features "$abi" --target-dir target/lua)
            cp target/lua/release/libsonoran.so "$built.tmp"
            # The interpreter loads it: a build of target/lua for another ABI that finished
            # between cargo and cp (scripts/build-lua.sh at the same time) is refused here.
            if why=$("$lua" -e "package.cpath = 'target/luarocks/$abi/?.so.tmp'; require('sonoran')" 2>&1); then
                mv -f "$built.tmp" "$built"
                echo "    $built" >&2
                exit 0
            fi
            echo "luarocks-build.sh: the module built for $abi does not load in $lua (attempt $attempt): $why" >&2
        done
        exit 1
        ;;
    install)
        [ "$#" -eq 3 ] || usage
        libdir=$3
        if [ ! -f "$built" ]; then
            echo "luarocks-build.sh: $built is missing: the build step did not run for $abi" >&2
            exit 1
        fi
        mkdir -p "$libdir"
        cp "$built" "$libdir/sonoran.so"
        ;;
    *) usage ;;
esac
