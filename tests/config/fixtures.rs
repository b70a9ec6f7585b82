//! `fixtures/configs/bad/<why>/`: each must fail with exactly the message snapshotted in
//! `tests/snapshots/`; `fixtures/configs/good/<what>/`: each loads, and its warnings and
//! normalized form are snapshotted.

use std::path::{Path, PathBuf};

use nua_config::{self as config, LoadOptions};

/// The fixture folders of `kind`, as paths relative to the crate root (tests run there), so
/// that messages show short paths.
fn fixtures(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        std::env::current_dir().unwrap(),
        root,
        "integration tests run in the crate root"
    );
    let dir = Path::new("fixtures/configs").join(kind);
    let mut dirs: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| dir.join(e.unwrap().file_name()))
        .collect();
    dirs.sort();
    dirs
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// What a bad fixture loads: the folder itself, or the path named in its `path-to-load` (for
/// errors about the path given rather than the config found).
fn target(dir: &Path) -> PathBuf {
    match fs_err::read_to_string(dir.join("path-to-load")) {
        Ok(path) => dir.join(path.trim()),
        Err(_) => dir.to_path_buf(),
    }
}

/// The error as the CLI prints it: the message, then the hint.
fn error_text(err: &config::Error) -> String {
    let mut text = format!("error: {err}");
    if let Some(hint) = err.hint() {
        text.push_str(&format!("\nhint: {hint}"));
    }
    text
}

#[test]
fn every_bad_fixture_fails_with_its_message() {
    let dirs = fixtures("bad");
    assert!(dirs.len() >= 15, "bad fixtures are missing");
    for dir in dirs {
        let err = match config::load(&target(&dir), &LoadOptions::default()) {
            Ok(_) => panic!("{} loads, but it exists to fail", dir.display()),
            Err(e) => e,
        };
        // Everything found in a file points into it.
        if let Some(file) = err.file() {
            let at = format!("{}:", file.display());
            let positioned = err
                .to_string()
                .lines()
                .filter(|l| l.starts_with(&at))
                .all(|l| {
                    let mut parts = l[at.len()..].splitn(3, ':');
                    parts.next().unwrap().parse::<usize>().is_ok()
                        && parts.next().unwrap().parse::<usize>().is_ok()
                });
            assert!(positioned, "{}: no line:col in {err}", dir.display());
        }
        insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("bad__{}", name(&dir)), error_text(&err));
        });
    }
}

#[test]
fn every_good_fixture_loads_and_reports_its_warnings() {
    for dir in fixtures("good") {
        let loaded = config::load(&dir, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let warnings: Vec<String> = loaded
            .warnings
            .iter()
            .map(|w| format!("warning: {w}"))
            .collect();
        insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("good__{}__warnings", name(&dir)), warnings.join("\n"));
            insta::assert_json_snapshot!(format!("good__{}__normalized", name(&dir)), loaded.config.normalized_json());
        });
        let strict = config::load(&dir, &LoadOptions { strict: true });
        assert_eq!(
            strict.is_err(),
            !loaded.warnings.is_empty(),
            "{}: --strict must fail exactly when there are warnings",
            dir.display()
        );
    }
}
