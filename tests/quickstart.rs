//! The README's main command stays true: the quickstart (built by `cargo test` with the other
//! examples) runs every call through the C ABI on both APIs against the emulator, and each
//! accepted request calls back once.

use std::path::PathBuf;
use std::process::Command;

fn quickstart() -> PathBuf {
    // tests run from target/<profile>/deps; the examples are built next to it.
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().unwrap().parent().unwrap();
    let path = profile.join("examples").join("quickstart");
    assert!(path.is_file(), "{} is missing: `cargo test` builds the examples", path.display());
    path
}

#[test]
fn the_quickstart_runs_every_call_on_both_apis() {
    let out = Command::new(quickstart())
        .env_remove("SONORAN_API_KEY")
        .env_remove("SONORAN_COMMUNITY_ID")
        .env_remove("SONORAN_API_URL")
        .output()
        .expect("run the quickstart");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for needle in [
        "== v2 API ==",
        "v2: 11 requests accepted, 11 results delivered",
        "== legacy API ==",
        "legacy: 11 requests accepted, 11 results delivered",
        r#""type":"CREATE_LINK_CODE","ok":true"#,
        r#""type":"LINK_FROM_TABLET","ok":true,"status":200,"data":{"accountUuid""#,
        r#""type":"MODIFY_IDENTIFIER","ok":true"#,
        r#""code":"NOT_LINKED""#,
        "data.sessionId: is not in v2",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // Every v2 call the quickstart accepted succeeded, but the unlinked player's check.
    let v2 = &text[text.find("== v2 API ==").unwrap()..text.find("== legacy API ==").unwrap()];
    let failed: Vec<&str> = v2.lines().filter(|l| l.contains(r#""ok":false"#)).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("NOT_LINKED"), "{failed:?}");
    let one = Command::new(quickstart()).args(["--api", "v2"]).env_remove("SONORAN_API_KEY").output().unwrap();
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(one.status.success() && text.contains("== v2 API ==") && !text.contains("== legacy API =="), "{text}");
}
