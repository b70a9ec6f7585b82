//! `nua-pack check`: exit codes 0 (valid), 1 (invalid), 2 (usage), and the `--json` report.

use std::process::{Command, Output};

use serde_json::Value;

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nua-pack"))
        .arg("check")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("nua-pack runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const GOOD: &str = "../shared/nua-compat/apps/real-apps/hedgedoc";
const LEGACY: &str = "fixtures/configs/good/legacy-keys-moved-with-warnings";
const BAD: &str = "fixtures/configs/bad/unknown-key-in-nested-port-table";

#[test]
fn a_valid_config_prints_its_normalized_form_and_exits_0() {
    let out = check(&[GOOD]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let config: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(config["metadata"]["id"], "hedgedoc");
    assert_eq!(
        config["provider"][0]["build"]["base-image"],
        "docker.io/library/postgres:14.6"
    );
}

#[test]
fn warnings_go_to_stderr_and_strict_makes_them_fatal() {
    let out = check(&[LEGACY]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.lines().all(|l| l.starts_with("warning: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 7, "{stderr}");

    let strict = check(&[LEGACY, "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        text(&strict.stderr).starts_with("error: "),
        "{}",
        text(&strict.stderr)
    );
}

#[test]
fn an_invalid_config_prints_the_error_and_its_hint_and_exits_1() {
    let out = check(&[BAD]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("nua-config.toml:8:1: unknown key `protocole` in `port.web`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: did you mean `protocol`?"),
        "{stderr}"
    );
}

#[test]
fn json_reports_validity_config_warnings_and_errors() {
    let out = check(&["--json", LEGACY]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(report["valid"], true);
    assert!(report["file"]
        .as_str()
        .unwrap()
        .ends_with("nua-config.toml"));
    assert_eq!(report["config"]["metadata"]["id"], "legacy");
    assert_eq!(report["warnings"].as_array().unwrap().len(), 7);
    assert_eq!(report["warnings"][0]["line"], 6);
    assert_eq!(report["errors"], Value::Array(vec![]));

    let out = check(&["--json", BAD]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["config"], Value::Null);
    let error = &report["errors"][0];
    assert_eq!(
        (error["line"].as_u64(), error["col"].as_u64()),
        (Some(8), Some(1))
    );
    assert_eq!(error["hint"], "did you mean `protocol`?");
}

#[test]
fn an_id_or_version_that_cannot_name_an_image_exits_1() {
    for (fixture, message) in [
        (
            "id-has-uppercase",
            "nua-config.toml:2:1: `metadata.id` is not a valid image name",
        ),
        (
            "id-is-a-path",
            "nua-config.toml:3:1: `metadata.id` is not a valid image name",
        ),
        (
            "version-has-a-space",
            "nua-config.toml:3:1: `metadata.version` cannot be part of an image tag",
        ),
    ] {
        let out = check(&[&format!("fixtures/configs/bad/{fixture}")]);
        assert_eq!(out.status.code(), Some(1), "{fixture}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(message), "{fixture}: {stderr}");
        assert!(stderr.contains("\nhint: use "), "{fixture}: {stderr}");
    }
}

#[test]
fn a_path_that_is_no_config_says_what_to_give_instead() {
    let out = check(&["fixtures/configs/bad/path-does-not-exist/no-such-folder"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        stderr.contains("hint: give the app folder or its nua-config file"),
        "{stderr}"
    );

    let out = check(&["fixtures/configs/bad/config-file-extension-is-txt/nua-config.txt"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the extension must be one of `.toml`, `.json`, `.yaml`, `.yml`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: name the file `nua-config.toml` (or `.json`, `.yaml`)"),
        "{stderr}"
    );
}

#[test]
fn a_usage_error_exits_2() {
    assert_eq!(check(&["--no-such-flag"]).status.code(), Some(2));
}
