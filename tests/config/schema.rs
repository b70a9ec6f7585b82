//! `schemas/nua-config.schema.json` is generated from the Rust types and checked in: it must
//! be up to date, and every valid config (fixtures and corpus) must validate against it.

use std::path::{Path, PathBuf};

use nua_config::{self as config, schema, LoadOptions};
use serde_json::Value;

use super::conformance::corpus_apps;

fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/nua-config.schema.json")
}

#[test]
fn the_checked_in_schema_is_up_to_date() {
    let fresh = schema::json_schema_text();
    if std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        fs_err::create_dir_all(schema_file().parent().unwrap()).unwrap();
        fs_err::write(schema_file(), &fresh).unwrap();
        return;
    }
    let on_disk = fs_err::read_to_string(schema_file()).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "schemas/nua-config.schema.json is stale: the config types changed.\n\
         Regenerate it with `UPDATE_SCHEMAS=1 cargo test --test config schema` and commit it."
    );
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema::json_schema()).expect("the schema is a valid JSON Schema")
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Every valid config: corpus apps (but the broken one) and the good fixtures.
fn valid_configs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = corpus_apps().into_iter().map(|(_, _, dir)| dir).collect();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/configs/good");
    if let Ok(entries) = fs_err::read_dir(good) {
        dirs.extend(entries.map(|e| e.unwrap().path()));
    }
    dirs
}

#[test]
fn every_loaded_config_validates_against_the_schema() {
    let validator = validator();
    let mut checked = 0;
    let mut failures = Vec::new();
    for dir in valid_configs() {
        let Ok(loaded) = config::load(&dir, &LoadOptions::default()) else {
            continue;
        };
        checked += 1;
        for e in errors(&validator, &loaded.config.normalized_json()) {
            failures.push(format!("{} (normalized): {e}", dir.display()));
        }
        // A file without legacy keys is itself an instance of the schema, as written.
        if loaded.warnings.is_empty() {
            for e in errors(&validator, &raw(&loaded.file)) {
                failures.push(format!("{} (as written): {e}", loaded.file.display()));
            }
        }
    }
    assert!(checked >= 22, "only {checked} configs loaded");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let validator = validator();
    let bad = serde_json::json!({"metadata": {"id": "a", "version": "1"}, "port": {"web": {"container": "80"}}, "prots": {}});
    assert_eq!(
        errors(&validator, &bad).len(),
        2,
        "{:?}",
        errors(&validator, &bad)
    );
}

fn raw(file: &Path) -> Value {
    let text = fs_err::read_to_string(file).unwrap();
    match file.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).unwrap(),
        Some("json") => serde_json::from_str(&text).unwrap(),
        _ => serde_yaml_ng::from_str(&text).unwrap(),
    }
}
