//! Builds that must fail, on the real archive and sandbox: a failing build command, a failing
//! test, a Debian package that does not exist, no start command. Each names the step, the
//! command and its last lines, and leaves neither an image nor a broken cache behind.

mod common;

use std::path::Path;

use common::*;

/// `nua-pack build APP` that must fail: its stderr, after checking that no output was
/// written and the store is intact.
fn build_fails(app: &Path, base: &str, work: &Path) -> String {
    let cache = cache_with_base(base, work);
    let out = work.join("out.tar");
    let result = run(nua_pack()
        .arg("build")
        .arg(app)
        .arg("--output")
        .arg(&out)
        .env("NUA_CACHE_DIR", &cache));
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(!out.exists(), "an image was written despite: {stderr}");
    assert_store_intact(&cache);
    stderr
}

/// A copy of `fixture` in `work` with its nua-config replaced by `config`.
fn app_with(work: &Path, fixture: &str, config: &str) -> std::path::PathBuf {
    let app = work.join("app");
    copy_tree(&fixture_app(fixture), &app);
    std::fs::write(app.join("nua-config.toml"), config).unwrap();
    app
}

#[test]
fn a_failing_build_command_is_named_with_its_last_lines() {
    let work = temp_dir();
    let stderr = build_fails(&fixture_app("build-fails"), "debian-bookworm", work.path());
    assert!(stderr.contains("step `build` failed"), "{stderr}");
    assert!(
        stderr.contains("echo compiling hello.c"),
        "the command: {stderr}"
    );
    assert!(stderr.contains("exit code 3"), "{stderr}");
    assert!(
        stderr.contains("hello.c:3: error: expected ;"),
        "last lines: {stderr}"
    );
    assert!(!stderr.contains("never reached"), "{stderr}");
}

#[test]
fn a_failing_test_fails_the_build_and_writes_no_image() {
    let work = temp_dir();
    let stderr = build_fails(&fixture_app("test-fails"), "debian-bookworm", work.path());
    assert!(
        stderr.contains("test `grep -q 'version 2' /nua/app/index.html` failed"),
        "{stderr}"
    );
    assert!(stderr.contains("exit code 1"), "{stderr}");
}

#[test]
fn a_package_debian_does_not_have_is_named() {
    let work = temp_dir();
    let app = app_with(
        work.path(),
        "test-fails",
        "[metadata]\nid = \"bad-package\"\nversion = \"1\"\n[build]\nbuilder = \"debian\"\n\
         [run]\npackages = [\"curl\", \"no-such-package-nua\"]\nstart = \"sleep 1\"\n",
    );
    let stderr = build_fails(&app, "debian-bookworm", work.path());
    assert!(stderr.contains("step `packages`"), "{stderr}");
    assert!(
        stderr.contains("nothing in the index satisfies `no-such-package-nua`"),
        "{stderr}"
    );
}

#[test]
fn an_app_without_a_start_command_is_refused_before_building() {
    let work = temp_dir();
    let app = app_with(
        work.path(),
        "test-fails",
        "[metadata]\nid = \"no-start\"\nversion = \"1\"\n[build]\nbuilder = \"debian\"\n",
    );
    let cache = work.path().join("empty-cache");
    let result = run(nua_pack()
        .arg("build")
        .arg(&app)
        .arg("-o")
        .arg(work.path().join("x.tar"))
        .env("NUA_CACHE_DIR", &cache));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has no start command"), "{stderr}");
    assert!(stderr.contains("nua-config.toml"), "{stderr}");
    assert!(
        !cache.join("blobs").exists(),
        "something was built: {stderr}"
    );
}
