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
}
