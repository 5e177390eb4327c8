//! Generates the C header from src/ffi/mod.rs and src/ffi/flows.rs (the C face's exported items)
//! with cbindgen into
//! OUT_DIR. The committed copy in
//! include/sonoran.h is rewritten only when SONORAN_WRITE_HEADER=1; a test fails when the two
//! differ, so the committed header cannot drift from the code.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi/mod.rs");
    println!("cargo:rerun-if-changed=src/ffi/flows.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=SONORAN_WRITE_HEADER");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("sonoran.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    // The version macros come from Cargo.toml's version, so the header cannot disagree with it.
    let env = |k: &str| std::env::var(k).expect(k);
    let version = format!(
        "\n/* The version of the library this header belongs to (the ABI policy is in the README). */\n\
         #define SONORAN_VERSION_MAJOR {}\n#define SONORAN_VERSION_MINOR {}\n#define SONORAN_VERSION_PATCH {}\n\
         #define SONORAN_VERSION_STRING \"{}\"",
        env("CARGO_PKG_VERSION_MAJOR"),
        env("CARGO_PKG_VERSION_MINOR"),
        env("CARGO_PKG_VERSION_PATCH"),
        env("CARGO_PKG_VERSION"),
    );
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_after_include(version)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_src(crate_dir.join("src/ffi/flows.rs"))
        .generate()
        .expect("generating the C header from src/ffi/mod.rs");
    bindings.write_to_file(&out);
    if std::env::var_os("SONORAN_WRITE_HEADER").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(crate_dir.join("include")).expect("include/");
        bindings.write_to_file(crate_dir.join("include/sonoran.h"));
    }
    println!("cargo:rustc-env=SONORAN_GENERATED_HEADER={}", out.display());
    if std::env::var_os("CARGO_FEATURE_GMOD").is_some() && env("CARGO_CFG_TARGET_OS") == "linux" {
        link_gmod_lua_shared();
    }
}

/// The Garry's Mod build (feature `gmod`) names the server's Lua library as a dependency:
/// `lua_shared.so`, found through the run path `$ORIGIN/../../../bin/linux64` (the module lives
/// in `garrysmod/lua/bin/`, the 64-bit server's LuaJIT in `bin/linux64/lua_shared.so`) or the
/// server's LD_LIBRARY_PATH. The server loads that library without making its symbols global,
/// so a module that only leaves `lua_*` undefined fails to load there ("undefined symbol");
/// Garry's Mod's own module kits link it the same way. The loader then finds the copy the server
/// already has (same file), and binds the module's `lua_*` to it.
///
/// The link needs a library with that name at build time: an empty stub whose soname is
/// `lua_shared.so`, made with the C compiler that links Rust on Linux.
fn link_gmod_lua_shared() {
    let dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("gmod");
    std::fs::create_dir_all(&dir).expect("OUT_DIR/gmod");
    let stub = dir.join("lua_shared_stub.so");
    let status = std::process::Command::new("cc")
        .args(["-shared", "-nostdlib", "-Wl,-soname,lua_shared.so", "-x", "c", "/dev/null", "-o"])
        .arg(&stub)
        .status()
        .expect("running cc to make the lua_shared.so stub for the gmod build");
    assert!(status.success(), "cc could not make the lua_shared.so stub for the gmod build");
    // --no-as-needed: the stub defines nothing, and the dependency must be recorded anyway.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-cdylib-link-arg={}", stub.display());
    println!("cargo:rustc-cdylib-link-arg=-Wl,--as-needed");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN/../../../bin/linux64");
}
