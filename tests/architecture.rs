//! The shape of the house, checked on the source: no import cycle between rooms (the top-level
//! modules of `src/`), the core knows neither face, the engine knows no wire format but the
//! backend it chooses, the wire rooms know no engine, no source file over the size the README
//! states, and every exported C function behind the panic boundary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOMS: &[&str] =
    &["api", "client", "config", "error", "ffi", "flows", "lua", "request", "response", "text", "transport"];
/// The rooms that know neither C nor Lua.
const CORE: &[&str] = &["api", "client", "config", "error", "flows", "request", "response", "text", "transport"];
/// Longest source file, in lines (README, "Layout").
const MAX_LINES: usize = 420;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each file's room and its code (comments left out, so that a doc link is no dependency).
fn sources() -> Vec<(String, PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(src()).unwrap();
            let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            let room = first.trim_end_matches(".rs").to_string();
            if room == "lib" {
                return None;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code: String =
                text.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
            Some((room, path, code))
        })
        .collect()
}

/// The rooms `code` names with `crate::room` (also inside `use crate::{a, b::c}`).
fn references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.insert(name);
            }
        } else {
            out.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    out.retain(|r| ROOMS.contains(&r.as_str()));
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (room, _, code) in sources() {
        let refs = references(&code);
        let entry = g.entry(room.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != room));
    }
    g
}

fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut c = stack[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_between_rooms() {
    let g = graph();
    for room in ROOMS {
        assert!(g.contains_key(*room), "room {room} not found under src/");
    }
    if let Some(c) = cycle(&g) {
        panic!("import cycle between rooms: {}\nthe graph: {g:#?}", c.join(" -> "));
    }
    println!("room dependencies (acyclic): {g:#?}");
}

#[test]
fn the_core_knows_neither_face_and_each_room_stays_in_its_place() {
    let g = graph();
    for room in CORE {
        for face in ["ffi", "lua"] {
            assert!(!g[*room].contains(face), "{room} depends on the {face} face");
        }
    }
    for other in ["client", "config", "flows", "transport"] {
        assert!(!g["api"].contains(other), "the wire rooms (api/) depend on {other}");
    }
    assert!(!g["client"].contains("flows"), "the engine depends on the flows built on it");
    assert!(!g["flows"].contains("api") && !g["flows"].contains("transport"), "the flows reach past the engine");
    // The engine knows one wire format by name only where it chooses the backend.
    for (room, path, code) in sources() {
        if room == "client" && path.file_name().unwrap() != "mod.rs" {
            assert!(!code.contains("legacy"), "{} names a wire format", path.display());
        }
    }
}

#[test]
fn no_source_file_is_over_the_documented_size() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut over = Vec::new();
    for path in files {
        let n = std::fs::read_to_string(&path).unwrap().lines().count();
        if n > MAX_LINES {
            over.push(format!("{}: {n} lines", path.display()));
        }
    }
    assert!(over.is_empty(), "over {MAX_LINES} lines: {over:?}");
}

/// Every `extern "C" fn` of the C face has one body: `guard(...)` (the panic boundary, which
/// sets or clears the last error) or `quiet(...)` (the same for the functions that read it).
#[test]
fn every_exported_c_function_is_behind_the_panic_boundary() {
    let text = ["ffi/mod.rs", "ffi/flows.rs"].map(|f| std::fs::read_to_string(src().join(f)).unwrap()).concat();
    let mut checked = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("extern \"C\" fn ") {
        rest = &rest[i + "extern \"C\" fn ".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let open = rest.find('{').expect("a body");
        let body = rest[open + 1..].trim_start();
        assert!(
            body.starts_with("guard(") || body.starts_with("quiet("),
            "{name}: its body must be `guard(...)` or `quiet(...)`, found: {}",
            body.lines().next().unwrap_or("")
        );
        checked.push(name);
    }
    assert!(checked.len() >= 21, "found only {checked:?}");
    let other: Vec<PathBuf> = {
        let mut files = Vec::new();
        rust_files(&src().join("ffi"), &mut files);
        files
            .into_iter()
            .filter(|p| !["mod.rs", "flows.rs"].contains(&p.file_name().unwrap().to_str().unwrap()))
            .collect()
    };
    for path in other {
        let code = std::fs::read_to_string(&path).unwrap();
        assert!(
            !code.contains("#[no_mangle]"),
            "{}: exported functions belong in ffi/mod.rs or ffi/flows.rs (the header's sources)",
            path.display()
        );
    }
}
