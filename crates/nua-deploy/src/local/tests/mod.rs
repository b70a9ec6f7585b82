//! Tests of [`plan`] on nua-configs written inline, with host ports that are free or busy
//! as each test says.

use std::collections::BTreeMap;
use std::path::Path;

use rstest::rstest;

use super::*;
use crate::testing::{config, Ports, APP, FIRST_FREE, IMAGE};

/// A request for the image `IMAGE` exposing `exposed`, with the nua-config `extra` (after
/// `[metadata]`; `None`: the image has no nua-config) and the `--env` overrides `env`.
fn request(extra: Option<&str>, exposed: &[&str], env: &[(&str, &str)]) -> Request {
    Request {
        name: APP.into(),
        image: IMAGE.into(),
        details: ImageDetails {
            exposed_ports: exposed.iter().map(|p| p.to_string()).collect(),
            ..ImageDetails::default()
        },
        config: extra.map(config),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        host_mounts: true,
        kept: BTreeMap::new(),
    }
}

/// The environment the container sees. Each key must come once: Docker passes duplicates
/// on, and programs differ on which one they take.
fn effective(env: &[String]) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    for kv in env {
        let (k, v) = kv.split_once('=').expect("KEY=VALUE");
        let before = seen.insert(k.to_owned(), v.to_owned());
        assert!(before.is_none(), "`{k}` is set twice: {env:?}");
    }
    seen
}

#[test]
fn an_image_may_not_mount_host_folders_unless_allowed() {
    let extra = "[[volume]]\ntype = \"bind\"\nname = \"/\"\ntarget = \"/host\"\n";
    let mut from_image = request(Some(extra), &[], &[]);
    from_image.host_mounts = false;
    let err = plan(&from_image, &Ports::free(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::HostMount { path, target } if path == Path::new("/") && target == "/host"),
        "{err:?}"
    );
    assert!(err.to_string().contains("--allow-host-mounts"), "{err}");
    from_image.host_mounts = true;
    let allowed = plan(&from_image, &Ports::free(), &[]).unwrap();
    assert_eq!(allowed.spec.mounts.len(), 1);
}

#[rstest]
#[case::with_config(Some("[port.web]\ncontainer = 8000\n"))]
#[case::without_config(None)]
fn the_container_is_named_and_labelled(#[case] extra: Option<&str>) {
    let plan = plan(&request(extra, &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(plan.spec.name, APP);
    assert_eq!(plan.spec.image, IMAGE);
    assert_eq!(plan.spec.network, None);
    assert_eq!(
        plan.spec.labels,
        BTreeMap::from([
            ("nua.app".to_owned(), APP.to_owned()),
            ("nua.image".to_owned(), IMAGE.to_owned()),
        ])
    );
}

#[test]
fn random_values_of_an_earlier_run_are_kept() {
    let extra = "[env]\nSECRET = { random = true, length = 12 }\n";
    let first = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    let secret = first.random["SECRET"].clone();
    assert_eq!(secret.len(), 12);
    assert_eq!(effective(&first.spec.env)["SECRET"], secret);

    let mut again = request(Some(extra), &[], &[]);
    again.kept = first.random.clone();
    let second = plan(&again, &Ports::free(), &[]).unwrap();
    assert_eq!(effective(&second.spec.env)["SECRET"], secret);
    assert_eq!(second.random, first.random);

    // A kept value that no longer fits the config (its length changed) is made again.
    again.kept.insert("SECRET".into(), "short".into());
    let third = plan(&again, &Ports::free(), &[]).unwrap();
    assert_eq!(third.random["SECRET"].len(), 12);
    assert_ne!(third.random["SECRET"], "short");
}

mod env;
mod ports;
mod volumes;
