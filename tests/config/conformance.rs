//! Every corpus config loads (but one) and agrees with what the original Nua produced
//! (`expected/<group>__<app>.json`) on every point the corpus README lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nua_config::{self as config, EnvKind, LoadOptions, NuaConfig};
use serde_json::Value;

/// The corpus, read in place.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/nua-compat")
}

/// `(group, app, folder)` of every app of the corpus.
pub fn corpus_apps() -> Vec<(String, String, PathBuf)> {
    let mut apps = Vec::new();
    for group in fs_err::read_dir(corpus().join("apps")).unwrap() {
        let group = group.unwrap().path();
        for app in fs_err::read_dir(&group).unwrap() {
            let app = app.unwrap().path();
            let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
            apps.push((name(&group), name(&app), app));
        }
    }
    apps.sort();
    assert!(
        apps.len() >= 23,
        "the corpus is missing apps: {}",
        apps.len()
    );
    apps
}

const FAILS: (&str, &str) = ("to-refactor", "flask_pg_local");

#[test]
fn the_one_broken_corpus_config_names_the_provider_and_its_missing_name() {
    let dir = corpus().join("apps").join(FAILS.0).join(FAILS.1);
    let err = config::load(&dir, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nua-config.toml:38:1: the `[[provider]]` entry #1"),
        "{err}"
    );
    assert!(err.contains("missing the required key `name`"), "{err}");
}

#[test]
fn every_other_corpus_config_matches_the_original() {
    let mut failures = Vec::new();
    for (group, app, dir) in corpus_apps() {
        if (group.as_str(), app.as_str()) == FAILS {
            continue;
        }
        let expected_file = corpus()
            .join("expected")
            .join(format!("{group}__{app}.json"));
        let expected: Value =
            serde_json::from_str(&fs_err::read_to_string(&expected_file).unwrap()).unwrap();
        match config::load(&dir, &LoadOptions::default()) {
            Ok(loaded) => failures.extend(
                compare(&loaded.config, &expected)
                    .into_iter()
                    .map(|f| format!("{group}/{app}: {f}")),
            ),
            Err(e) => failures.push(format!("{group}/{app}: does not load: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Remove nulls, recursively: the original wrote every absent key as null.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
        other => other.clone(),
    }
}

fn expected_kind(v: &Value) -> EnvKind {
    let on = |k: &str| {
        v.get(k)
            .is_some_and(|f| f == &Value::Bool(true) || f == "true")
    };
    match v {
        Value::Object(_) if on("random") => EnvKind::Random,
        Value::Object(_) if on("unique_user") => EnvKind::UniqueUser,
        Value::Object(_) if on("unique_db") => EnvKind::UniqueDb,
        Value::Object(_) if on("external_ip") => EnvKind::ExternalIp,
        Value::Object(_) if on("nua_internal") => EnvKind::NuaInternal,
        Value::Object(_) => EnvKind::From,
        _ => EnvKind::Plain,
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Volumes as (type, name, target, driver); the original left the default type `managed` out.
fn volumes(v: &Value) -> Vec<Vec<Value>> {
    let list = v.as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|vol| {
            let ty = match vol.get("type") {
                None | Some(Value::Null) => Value::from("managed"),
                Some(t) => t.clone(),
            };
            let field = |k: &str| clean(&vol[k]);
            vec![ty, field("name"), field("target"), field("driver")]
        })
        .collect()
}

fn compare(config: &NuaConfig, exp: &Value) -> Vec<String> {
    let ours = config.normalized_json();
    let mut diffs = Vec::new();
    let mut check = |what: &str, a: Value, b: Value| {
        if a != b {
            diffs.push(format!("{what}: ours {a}, expected {b}"));
        }
    };
    let meta = &exp["metadata"];
    for key in ["id", "version", "release"] {
        check(key, clean(&ours["metadata"][key]), clean(&meta[key]));
    }
    let id = meta["id"].as_str().unwrap();
    let mut tag = format!(
        "nua-{}:{}",
        id.strip_prefix("nua-").unwrap_or(id),
        meta["version"].as_str().unwrap()
    );
    if let Some(r) = meta["release"].as_u64() {
        tag.push_str(&format!("-{r}"));
    }
    check("image tag", config.image_tag().into(), tag.into());
    let build = &exp["build"];
    let method = match build["method"].as_str() {
        Some(m) => m,
        None if build["base-image"].is_string() => "wrap",
        None => "build",
    };
    check(
        "build method",
        ours["build"]["method"].clone(),
        method.into(),
    );
    let vars: BTreeMap<String, String> = meta
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.clone(),
                v.as_str()
                    .map(String::from)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))?,
            ))
        })
        .collect();
    for key in ["src-url", "git-url"] {
        let want = build[key]
            .as_str()
            .map(|t| config::expand_placeholders(t, &vars).unwrap());
        check(
            key,
            clean(&ours["build"][key]),
            want.map_or(Value::Null, Value::from),
        );
    }
    check(
        "port names",
        keys(&ours["port"]).into_iter().collect(),
        keys(&exp["port"]).into_iter().collect(),
    );
    for (name, port) in exp["port"].as_object().into_iter().flatten() {
        for field in ["container", "host", "proxy", "protocol", "ssl", "web"] {
            check(
                &format!("port.{name}.{field}"),
                clean(&ours["port"][name][field]),
                clean(&port[field]),
            );
        }
    }
    check(
        "env keys",
        keys(&ours["env"]).into_iter().collect(),
        keys(&exp["env"]).into_iter().collect(),
    );
    for (name, value) in exp["env"].as_object().into_iter().flatten() {
        if let Some(v) = config.env.get(name) {
            check(
                &format!("env.{name} kind"),
                serde_json::to_value(v.kind()).unwrap(),
                serde_json::to_value(expected_kind(value)).unwrap(),
            );
        }
    }
    check(
        "volumes",
        serde_json::to_value(volumes(&ours["volume"])).unwrap(),
        serde_json::to_value(volumes(&exp["volume"])).unwrap(),
    );
    let ours_p = ours["provider"].as_array().cloned().unwrap_or_default();
    let exp_p = exp["provider"].as_array().cloned().unwrap_or_default();
    check("provider count", ours_p.len().into(), exp_p.len().into());
    for (o, e) in ours_p.iter().zip(&exp_p) {
        let name = e["name"].as_str().unwrap_or("?");
        for field in ["name", "type", "module-name"] {
            check(
                &format!("provider {name} {field}"),
                clean(&o[field]),
                clean(&e[field]),
            );
        }
        // The original dropped `base-image` written directly under `[[provider]]`; the corpus
        // file still says which image it meant.
        let want_image = clean(&e["build"]["base-image"]);
        if !want_image.is_null() || o["module-name"].is_string() {
            check(
                &format!("provider {name} image"),
                clean(&o["build"]["base-image"]),
                want_image,
            );
        }
        check(
            &format!("provider {name} env keys"),
            keys(&o["env"]).into_iter().collect(),
            keys(&e["env"]).into_iter().collect(),
        );
        check(
            &format!("provider {name} volumes"),
            serde_json::to_value(volumes(&o["volume"])).unwrap(),
            serde_json::to_value(volumes(&e["volume"])).unwrap(),
        );
        check(
            &format!("provider {name} backup"),
            clean(&o["backup"]["method"]),
            clean(&e["backup"]["method"]),
        );
    }
    check(
        "healthcheck",
        clean(&ours["healthcheck"]),
        clean(&exp["healthcheck"]),
    );
    check(
        "backup method",
        clean(&ours["backup"]["method"]),
        clean(&exp["backup"]["method"]),
    );
    diffs
}

#[test]
fn the_same_app_in_toml_json_and_yaml_loads_the_same() {
    let load = |format: &str| {
        let dir = corpus().join(format!("apps/sample-apps/echo_two_ports_{format}"));
        let mut config = config::load(&dir, &LoadOptions::default()).unwrap().config;
        // Only the names differ between the three files.
        config.metadata.id.clear();
        config.metadata.title = None;
        config.normalized_json()
    };
    let toml = load("toml");
    assert_eq!(load("json"), toml);
    assert_eq!(load("yaml"), toml);
}
