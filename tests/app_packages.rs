//! Debian packages of an app, on the real archive and Docker: `[run] packages` are kept,
//! `[build] packages` are there for the build commands only; a `project` sub-folder is the
//! source, the app's `nua/` files are merged into `/nua/`, and the tests run in the image.

mod common;

use std::process::Command;

use common::app_build::{build_command, build_events, steps_made as made};
use common::docker::load;
use common::*;
use serde_json::Value;

fn build(cache: &std::path::Path, out: &std::path::Path) -> Vec<Value> {
    build_events(&mut build_command(&fixture_app("c-hello"), cache, out, &[]))
}

#[test]
fn run_packages_stay_build_packages_go_and_the_tests_pass() {
    let work = temp_dir();
    let cache = cache_with_base("debian-bookworm", work.path());
    let out = work.path().join("c-hello.tar");
    let events = build(&cache, &out);
    for step in [
        "packages: unpack",
        "build-packages: unpack",
        "build",
        "nua-files",
        "test",
    ] {
        assert!(
            made(&events).iter().any(|s| s.starts_with(step)),
            "{step} did not run: {:?}",
            made(&events)
        );
    }

    let tag = "nua-c-hello:1.0-1";
    let _image = load(&out, tag);
    let script = "curl --version >/dev/null && echo curl; command -v gcc || echo no-gcc; \
                  /nua/app/hello; cat /nua/etc/greeting.txt; ls /nua/app; \
                  dpkg-query -W -f '${Package}\\n' | grep -x -e curl -e gcc-12 -e libc6-dev; \
                  cat /nua/metadata/sbom.json";
    let stdout = run_ok(Command::new("docker").args(["run", "--rm", tag, "sh", "-c", script]));
    let mut lines = stdout.lines();
    let head: Vec<&str> = lines.by_ref().take(6).collect();
    assert_eq!(
        head,
        [
            "curl",
            "no-gcc",
            "hello from C",
            "greetings from the app's nua/ folder",
            "hello",
            "hello.c"
        ],
        "{stdout}"
    );
    // dpkg knows curl, and nothing of the build packages.
    assert_eq!(lines.next(), Some("curl"), "{stdout}");
    let sbom: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let names: Vec<&str> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"curl") && names.contains(&"libcurl4"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"gcc-12") && !names.contains(&"libc6-dev"),
        "{names:?}"
    );

    // Nothing changed: nothing is made again, the tests included.
    let again = build(&cache, &out);
    assert!(made(&again).is_empty(), "{:?}", made(&again));
    let finished: Vec<&Value> = again
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["step"] == "test")
        .collect();
    assert_eq!(finished.len(), 1);
}
