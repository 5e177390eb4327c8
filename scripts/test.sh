#!/usr/bin/env bash
# The test command: builds the Lua modules (dist/<abi>/sonoran.so, and Garry's Mod's
# dist/gmod/gmsv_sonoran_linux64.dll), checks formatting and lints,
# then runs every test (Rust unit and integration tests, the C and C++ hosts, valgrind, and the
# Lua scripts under lua5.4, luajit and lua5.1), all against the offline emulator on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
for tool in lua5.4 luajit lua5.1 valgrind cc c++ nm readelf pkg-config luarocks redis-server redis-cli openssl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing="$tool"
        break
    fi
done
if [ -z "$missing" ]; then
    for header in /usr/include/lua5.4/lua.h /usr/include/lua5.1/lua.h /usr/include/luajit-2.1/lua.h; do
        [ -f "$header" ] || missing="$header"
    done
fi
# Luanti's headless server (tests/luanti.rs); Debian installs it in /usr/games, which is not on
# every PATH.
if [ -z "$missing" ] && ! command -v minetestserver >/dev/null 2>&1 && [ ! -x /usr/games/minetestserver ]; then
    missing="minetestserver"
fi
if [ -z "$missing" ] && ! cargo cinstall --version >/dev/null 2>&1; then
    missing="cargo-c (cargo cinstall)"
fi
if [ -n "$missing" ]; then
    echo "installing the test dependencies ($missing is missing)"
    scripts/install-deps.sh
fi

scripts/build-lua.sh
scripts/build-lua.sh gmod
cargo fmt --check
cargo clippy --all-targets -- -D warnings
for abi in lua54 luajit lua51 gmod; do
    cargo clippy --features "$abi" --target-dir target/lua --lib -- -D warnings
done
# The C and C++ hosts link target/debug/libsonoran.so: build the cdylib before the tests.
cargo build
mkdir -p target
set +e
cargo test --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' \
    target/test-output.txt
exit "$status"
