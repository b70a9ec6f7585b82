//! `--cache-to` and `--cache-from`: a build cache kept in the real registry, for builders
//! that start with an empty disk. A builder with nothing makes the same image as one with a
//! warm cache, running no step; a changed source runs only what depends on it; a tampered
//! layer is refused and its step run.

mod common;

use std::path::Path;

use common::app_build::{build_command, build_events, steps_made};
use common::registry::{Auth, Registry};
use common::*;
use serde_json::Value;

fn build(app: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    build_events(&mut build_command(app, cache, out, extra))
}

fn digest(events: &[Value]) -> &Value {
    &events.last().unwrap()["manifest_digest"]
}

fn fetched(events: &[Value]) -> Vec<(&str, &str)> {
    events
        .iter()
        .filter(|e| e["event"] == "step_fetched")
        .map(|e| (e["step"].as_str().unwrap(), e["from"].as_str().unwrap()))
        .collect()
}

#[test]
fn an_empty_builder_takes_every_step_from_the_registry_and_makes_the_same_image() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let reference = format!("{host}/cache/flask-hello:buildcache");
    let work = temp_dir();
    let app = work.path().join("app");
    copy_tree(&fixture_app("flask-hello"), &app);
    let insecure = ["--insecure-registry", host.as_str()];

    // A warm builder pushes what its build used.
    let warm = cache_with_base("python", work.path());
    let mut to = vec!["--cache-to", reference.as_str()];
    to.extend(insecure);
    let first = build(&app, &warm, &work.path().join("a.tar"), &to);
    let pushed: Vec<&Value> = first
        .iter()
        .filter(|e| e["event"] == "cache_pushed")
        .collect();
    assert_eq!(pushed.len(), 1, "{first:?}");
    assert_eq!(pushed[0]["reference"], reference.as_str());
    let steps = first
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .count() as u64;
    assert_eq!(
        pushed[0]["entries"], steps,
        "every step's layer, the base's too"
    );

    // A builder with an empty disk runs nothing, and makes the same image.
    let empty = work.path().join("empty-cache");
    let mut from = vec!["--cache-from", reference.as_str()];
    from.extend(insecure);
    let second = build(&app, &empty, &work.path().join("b.tar"), &from);
    assert_eq!(digest(&second), digest(&first));
    assert_eq!(steps_made(&second), Vec::<&str>::new(), "{second:?}");
    let from_cache = fetched(&second);
    assert_eq!(from_cache.len() as u64, steps, "{second:?}");
    assert!(from_cache.iter().all(|(_, r)| *r == reference));
    assert_store_intact(&empty);

    // `base build` takes the same cache: a base never bootstrapped again.
    let base = |cache: &Path, extra: &[&str]| -> Value {
        let out = run_ok(
            nua_pack()
                .args(["base", "build", "python", "--json"])
                .args(extra)
                .env("NUA_CACHE_DIR", cache),
        );
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    };
    let fresh = work.path().join("base-cache");
    let from_registry = base(&fresh, &from);
    assert_eq!(from_registry["layers"], base(&warm, &[])["layers"]);
    assert_store_intact(&fresh);
    // Not one Debian package was downloaded, nor a root unpacked to run a step in.
    for never in ["packages", "sandbox"] {
        assert!(!fresh.join(never).exists(), "{never}");
    }
    assert!(!empty.join("packages").exists());

    // A one-line change of the source: only the source and what follows run.
    let source = app.join("app.py");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("Hello", "Hi")).unwrap();
    let other = work.path().join("other-cache");
    let third = build(&app, &other, &work.path().join("c.tar"), &from);
    assert_ne!(digest(&third), digest(&first));
    let made = steps_made(&third);
    assert!(made.contains(&"source"), "{made:?}");
    assert!(
        made.iter()
            .all(|s| !s.contains("bootstrap") && !s.contains("dependencies")),
        "{made:?}"
    );

    // A cache whose layer was changed in the registry: a warning, the step runs, and the
    // image is the right one.
    std::fs::write(&source, &text).unwrap();
    let blobs = registry.storage().join("docker/registry/v2/blobs/sha256");
    // The largest blob is a base layer: damage it.
    let mut largest: Option<(u64, std::path::PathBuf)> = None;
    for dir in std::fs::read_dir(&blobs).unwrap().flatten() {
        for blob in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let data = blob.path().join("data");
            let size = std::fs::metadata(&data).unwrap().len();
            if largest.as_ref().is_none_or(|(s, _)| size > *s) {
                largest = Some((size, data));
            }
        }
    }
    let (_, data) = largest.unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let damaged = work.path().join("damaged-cache");
    let out = run(&mut build_command(
        &app,
        &damaged,
        &work.path().join("d.tar"),
        &from,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fourth: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(digest(&fourth), digest(&first));
    let warnings: Vec<&str> = fourth
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("of the cache `{reference}` is not used"))
            && warnings[0].ends_with("runs instead"),
        "{warnings:?}"
    );
    assert_eq!(steps_made(&fourth).len(), 1, "{fourth:?}");
    assert_store_intact(&damaged);

    // A cache nobody can read: a warning, and a normal build.
    let nowhere = ["--cache-from", "127.0.0.1:9/nothing:cache"];
    let fifth = build(&app, &warm, &work.path().join("e.tar"), &nowhere);
    assert_eq!(digest(&fifth), digest(&first));
    assert!(
        fifth.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap()
                .starts_with("the cache `127.0.0.1:9/nothing:cache` cannot be read")),
        "{fifth:?}"
    );
}
