//! The documentation agrees with the code: the error codes stand in one list
//! (`ErrorCode::ALL`), and the C header's block and the README's table show that list, in that
//! order; every configuration key the parser takes has its row in the README.

use sonoran::ErrorCode;
use std::path::PathBuf;

fn read(rel: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

fn codes() -> Vec<String> {
    ErrorCode::ALL.iter().map(|c| c.as_str().to_string()).collect()
}

/// The codes of the header's "Error codes (error.code)" block, in order.
fn header_codes() -> Vec<String> {
    let header = read("include/sonoran.h");
    let start = header.find("Error codes (error.code)").expect("the header's error code block");
    header[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != "*")
        .filter_map(|l| {
            let word = l.trim_start_matches([' ', '*']).split_whitespace().next()?;
            // A code starts its line; a continuation is indented further.
            let starts = l.starts_with(" *   ") && !l[5..].starts_with(' ');
            (starts && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')).then(|| word.to_string())
        })
        .collect()
}

/// The codes of the README's "Error codes" table, in order.
fn readme_codes() -> Vec<String> {
    let readme = read("README.md");
    let start = readme.find("### Error codes").expect("the README's error code table");
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| code"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('`').nth(1).unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_header_and_the_readme_list_the_error_codes_of_the_code() {
    assert_eq!(header_codes(), codes(), "include/sonoran.h (cbindgen.toml's header block) disagrees with ErrorCode");
    assert_eq!(readme_codes(), codes(), "the README's error code table disagrees with ErrorCode");
}

#[test]
fn every_configuration_key_is_documented() {
    let parse = read("src/config/parse.rs");
    let start = parse.find("struct RawConfig {").unwrap();
    let end = start + parse[start..].find("\n}\n").unwrap();
    let keys: Vec<&str> = parse[start..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split(':').next())
        .filter(|k| !k.is_empty() && !k.starts_with('#') && !k.starts_with("//"))
        .collect();
    assert!(keys.len() >= 25, "{keys:?}");
    let readme = read("README.md");
    for key in keys {
        assert!(readme.contains(&format!("| `{key}` |")), "config key {key} has no row in the README");
    }
}
