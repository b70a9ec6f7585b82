//! The build cache as users drive it: two builds at once on one cache, `--no-cache`,
//! `nua-pack cache ls`, `cache prune` and `cache verify`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::app_build::{build_command, build_events, steps_made as made, EPOCH};
use common::*;
use serde_json::Value;

/// A build's events: the result last.
fn build(app: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    build_events(&mut build_command(app, cache, out, extra))
}

fn digest(events: &[Value]) -> &Value {
    &events.last().unwrap()["manifest_digest"]
}

#[test]
fn two_builds_at_once_share_one_cache_safely() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    // Both install from PyPI into one pip cache, and both run a test.
    let app = work.path().join("app");
    copy_tree(&fixture_app("flask-hello"), &app);
    let config = app.join("nua-config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let tested = text.replace(
        "builder = \"python\"",
        "builder = \"python\"\ntest = \"python3 -c 'import flask, gunicorn'\"",
    );
    assert_ne!(tested, text);
    std::fs::write(&config, tested).unwrap();
    let children: Vec<_> = ["a.tar", "b.tar"]
        .iter()
        .map(|out| {
            build_command(&app, &cache, &work.path().join(out), &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let results: Vec<Value> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(results[0]["manifest_digest"], results[1]["manifest_digest"]);
    assert_store_intact(&cache);
    // No temporary file of either is left where the cache keeps its records.
    for dir in ["layers", "resolved", "tests", "why/flask-hello"] {
        let Ok(entries) = std::fs::read_dir(cache.join(dir)) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".tmp"), "{dir}/{name} left behind");
        }
    }
    let again = build(&app, &cache, &work.path().join("c.tar"), &[]);
    assert!(made(&again).is_empty(), "{:?}", made(&again));
    assert_eq!(digest(&again), &results[0]["manifest_digest"]);
}

#[test]
fn no_cache_makes_every_app_step_again_to_the_same_image() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let app = fixture_app("static-site");
    let out = work.path().join("out.tar");
    let first = build(&app, &cache, &out, &[]);
    // A rewrite renames a new file into place: a new inode.
    let written = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&out).unwrap());
    let again = build(&app, &cache, &out, &["--no-cache", "--why"]);
    assert_eq!(made(&again), vec!["source", "metadata"]);
    assert_eq!(digest(&again), digest(&first));
    let why = again
        .iter()
        .find(|e| e["event"] == "step_running" && e["step"] == "source")
        .unwrap();
    assert!(
        why["reasons"][0].as_str().unwrap().contains("--no-cache"),
        "{why}"
    );
    // The same image: the tarball already there is left as it is.
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&meta),
        written,
        "an unchanged tarball was rewritten"
    );
    // A damaged one is written again.
    let length = meta.len();
    std::fs::File::options()
        .write(true)
        .open(&out)
        .unwrap()
        .set_len(length - 1)
        .unwrap();
    let fixed = build(&app, &cache, &out, &[]);
    assert_eq!(digest(&fixed), digest(&first));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), length);
    run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", out.display())),
    );
}

#[test]
fn cache_ls_names_the_steps_and_prune_removes_what_was_not_used() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let app = fixture_app("static-site");
    let out = work.path().join("out.tar");
    build(&app, &cache, &out, &[]);
    let ls = |cache: &Path| -> Value {
        let out = run_ok(
            nua_pack()
                .args(["cache", "ls", "--json"])
                .env("NUA_CACHE_DIR", cache),
        );
        serde_json::from_str(&out).unwrap()
    };
    let listed = ls(&cache);
    let steps: Vec<&str> = listed["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["step"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"source") && steps.contains(&"metadata"),
        "{steps:?}"
    );

    // Nothing is old yet: a prune keeping 14 days removes no layer.
    let kept = run_ok(
        nua_pack()
            .args(["cache", "prune", "--keep-days", "14", "--json"])
            .env("NUA_CACHE_DIR", &cache),
    );
    let kept: Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept["layer_entries"], 0, "{kept}");

    // The app's layers, made a month ago and not used since, go with their blobs; the
    // base's stay, and the next build remakes only the app's steps.
    let entries = cache.join("layers");
    for entry in std::fs::read_dir(&entries).unwrap() {
        let path = entry.unwrap().path();
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if json["step"] != "source" && json["step"] != "metadata" {
            continue;
        }
        let blob = cache.join("blobs/sha256").join(
            json["descriptor"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:"),
        );
        for file in [path, blob] {
            age_a_month(&file);
        }
    }
    // The bytes of a download that failed a month ago go; those of one that failed today
    // wait for the next pull.
    let partial = cache.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    let (old, recent) = (partial.join("a".repeat(64)), partial.join("b".repeat(64)));
    std::fs::write(&old, b"half a blob").unwrap();
    std::fs::write(&recent, b"half a blob").unwrap();
    age_a_month(&old);
    // A tool of an earlier nua, not run for a month, goes; this one's stays.
    let tools = cache.join("tools");
    let (old_tool, tool) = (tools.join("uv-0.0.1-x86_64"), tools.join("uv-9.9.9-x86_64"));
    for dir in [&old_tool, &tool] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("uv"), b"a program").unwrap();
    }
    age_a_month(&old_tool.join("uv"));
    let pruned = run_ok(
        nua_pack()
            .args(["cache", "prune", "--json"])
            .env("NUA_CACHE_DIR", &cache),
    );
    let pruned: Value = serde_json::from_str(&pruned).unwrap();
    assert!(pruned["layer_entries"].as_u64().unwrap() >= 2, "{pruned}");
    assert!(pruned["blobs"].as_u64().unwrap() >= 2, "{pruned}");
    assert!(!old.exists() && recent.exists());
    assert_eq!(pruned["tools"], 1, "{pruned}");
    assert_eq!(pruned["tool_bytes"], 9, "{pruned}");
    assert!(!old_tool.exists() && tool.join("uv").is_file());
    let left = ls(&cache)["layers"].clone();
    let steps = left.to_string();
    assert!(
        !steps.contains("\"source\"") && !steps.contains("\"metadata\""),
        "{steps}"
    );
    assert!(
        left.as_array().unwrap().len() >= 5,
        "the base's layers went: {steps}"
    );
    assert_store_intact(&cache);
    let rebuilt = build(&app, &cache, &out, &[]);
    assert_eq!(made(&rebuilt), vec!["source", "metadata"]);
}

/// Make `file` a month old; a hard link to the shared cache is replaced by a copy first,
/// so the shared one keeps its time.
fn age_a_month(file: &Path) {
    let copy = file.with_extension("copy");
    std::fs::copy(file, &copy).unwrap();
    std::fs::rename(&copy, file).unwrap();
    run_ok(Command::new("touch").args(["-d", "30 days ago"]).arg(file));
}

/// A new commit moves `SOURCE_DATE_EPOCH`: the source and what follows are made again, the
/// dependencies (below the source, dated by the base) are not; and the image is the one a
/// fresh cache makes at that time.
#[test]
fn a_new_commit_time_keeps_the_dependency_layers() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let app = fixture_app("flask-hello");
    let out = work.path().join("out.tar");
    let build_at = |cache: &Path, epoch: &str| -> Vec<Value> {
        build_events(build_command(&app, cache, &out, &[]).env("SOURCE_DATE_EPOCH", epoch))
    };
    build_at(&cache, EPOCH);
    let later = build_at(&cache, "1800000000");
    assert_eq!(made(&later), vec!["source", "metadata"]);
    let fresh = cache_with_base("python", &work.path().join("fresh"));
    let from_scratch = build_at(&fresh, "1800000000");
    assert_eq!(digest(&from_scratch), digest(&later));
}

/// A byte flipped in a cached blob: `cache verify` names it, moves it aside and fails; run
/// again, it passes and reports what was moved aside, which `cache prune` deletes.
#[test]
fn cache_verify_moves_a_corrupt_blob_aside_and_prune_deletes_it() {
    let work = temp_dir();
    let cache = work.path().join("cache");
    let store = nua_oci::BlobStore::open(&cache).unwrap();
    let intact = store.put_bytes(b"an intact blob").unwrap();
    let flipped = store.put_bytes(b"a blob to damage").unwrap();
    let path = store.path(&flipped.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let verify = |json: bool| {
        let mut cmd = nua_pack();
        cmd.args(["cache", "verify"]).env("NUA_CACHE_DIR", &cache);
        if json {
            cmd.arg("--json");
        }
        run(&mut cmd)
    };

    let first = verify(false);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&flipped.digest.to_string()), "{stdout}");
    assert!(!stdout.contains(&intact.digest.to_string()), "{stdout}");
    assert!(stdout.contains("2 blobs checked"), "{stdout}");
    assert!(stdout.contains("1 corrupt"), "{stdout}");
    assert!(!path.exists());
    assert!(store.contains(&intact.digest));

    let again = verify(true);
    assert!(again.status.success(), "{again:?}");
    let json: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(json["checked"], 1, "{json}");
    assert_eq!(json["corrupt"].as_array().unwrap().len(), 0, "{json}");
    let quarantined = json["quarantined"].as_array().unwrap();
    assert_eq!(quarantined.len(), 1, "{json}");
    let moved = quarantined[0]["path"].as_str().unwrap();
    assert!(moved.contains(flipped.digest.hex()), "{json}");

    let pruned = run_ok(
        nua_pack()
            .args(["cache", "prune", "--json"])
            .env("NUA_CACHE_DIR", &cache),
    );
    let pruned: Value = serde_json::from_str(&pruned).unwrap();
    assert_eq!(pruned["corrupt_files"], 1, "{pruned}");
    assert!(!Path::new(moved).exists());
}
