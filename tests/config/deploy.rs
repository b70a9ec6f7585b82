//! Deploy files: every `deploy-examples/` file of the nua-compat corpus loads, as the
//! original's orchestrator read it; `schemas/nua-deploy.schema.json` is generated from the
//! Rust types, checked in, and every corpus file validates against it.

use std::path::{Path, PathBuf};

use nua_config::{deploy, VolumeType};
use serde_json::Value;

use super::conformance::corpus as corpus_root;

fn examples() -> Vec<PathBuf> {
    let dir = corpus_root().join("deploy-examples");
    let mut files: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        4,
        "the corpus has four deploy examples: {files:?}"
    );
    files
}

#[test]
fn every_corpus_deploy_file_loads() {
    for file in examples() {
        let loaded = deploy::load_deploy(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!loaded.deploy.site.is_empty(), "{}", file.display());
        for site in &loaded.deploy.site {
            assert!(!site.image.is_empty());
        }
    }
}

#[test]
fn the_two_sites_example_keeps_its_tests_and_reads_its_docker_volume() {
    let file = corpus_root()
        .join("deploy-examples/test_integration.14-flask_pg_docker_psyco_2_sites.toml");
    let loaded = deploy::load_deploy(&file).unwrap();
    let sites = &loaded.deploy.site;
    assert_eq!(sites.len(), 2);
    assert_eq!(sites[0].domain.as_deref(), Some("test1.example.com"));
    assert_eq!(sites[0].test.len(), 2);
    assert_eq!(sites[0].test[0]["expect_str"], "Books");
    assert_eq!(sites[1].network.as_deref(), Some("flask-pg-2"));
    let volume = &sites[1].provider[0].volume[0];
    assert_eq!(sites[1].provider[0].name, "database");
    assert_eq!(volume.kind, Some(VolumeType::Managed));
    assert_eq!(volume.name.as_deref(), Some("postgres_data_pg_2"));
    assert_eq!(volume.driver.as_deref(), Some("local"));
    assert_eq!(volume.target, "/var/lib/postgresql/data");
    // `type = "volume"`, `source` and `mode = "rw"` were each read with a warning.
    let lines: Vec<usize> = loaded.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines.len(), 3, "{:?}", loaded.warnings);
}

#[test]
fn json_deploy_files_keep_env_types() {
    let file = corpus_root().join("deploy-examples/galene.sample_deploy_dual.json");
    let loaded = deploy::load_deploy(&file).unwrap();
    let env = serde_json::to_value(&loaded.deploy.site[1].env).unwrap();
    assert_eq!(env["LISTEN_PORT"], 8444);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/nua-deploy.schema.json")
}

#[test]
fn the_checked_in_deploy_schema_is_up_to_date() {
    let fresh = deploy::json_schema_text();
    if std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        fs_err::write(schema_file(), &fresh).unwrap();
        return;
    }
    let on_disk = fs_err::read_to_string(schema_file()).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "schemas/nua-deploy.schema.json is stale: the deploy types changed.\n\
         Regenerate it with `UPDATE_SCHEMAS=1 cargo test --test config schema` and commit it."
    );
}

#[test]
fn every_loaded_deploy_file_validates_against_the_schema() {
    let validator = jsonschema::validator_for(&deploy::json_schema()).unwrap();
    for file in examples() {
        let loaded = deploy::load_deploy(&file).unwrap();
        let instance: Value = serde_json::to_value(&loaded.deploy).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}
