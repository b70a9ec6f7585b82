//! Tests of [`start`], [`wait_ready`] and [`foreground`] on the in-memory engine.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::testing::{config, Ports, APP, FIRST_FREE, IMAGE};
use nua_runtime::fake::{FakeEngine, Script};
use nua_runtime::{CheckResult, ContainerSpec, Health, ImageDetails, Stream, VolumeSpec};

const WEB: &str = "[port.web]\ncontainer = 8000\n";
const TIMEOUT: Duration = Duration::from_secs(1);

fn request(extra: &str) -> Request {
    let config = config(extra);
    Request {
        name: APP.into(),
        image: IMAGE.into(),
        details: ImageDetails::default(),
        config: Some(config),
        env: Vec::new(),
        host_mounts: true,
        kept: BTreeMap::new(),
    }
}

/// An engine that has the image, whose containers behave as `script` says.
fn engine(script: Script) -> FakeEngine {
    let engine = FakeEngine::new();
    engine.add_image(IMAGE, ImageDetails::default());
    engine.script(IMAGE, script);
    engine
}

/// An engine with the app started from a config with a web port.
fn started(script: Script) -> FakeEngine {
    let engine = engine(script);
    start(&engine, &request(WEB), &Ports::free()).unwrap();
    engine
}

/// A container of the app made earlier (by an earlier `nua run`, or by someone else when
/// `labels` is empty).
fn existing(engine: &FakeEngine, labels: &[(&str, &str)]) {
    let spec = ContainerSpec {
        name: APP.into(),
        image: IMAGE.into(),
        env: vec!["OLD=1".into()],
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ContainerSpec::default()
    };
    engine.create_container(&spec).unwrap();
}

fn ours() -> [(&'static str, &'static str); 2] {
    [(APP_LABEL, APP), ("nua.image", IMAGE)]
}

fn line(text: &str) -> LogLine {
    LogLine {
        stream: Stream::Stdout,
        text: text.into(),
    }
}

fn health(status: HealthStatus, log: Vec<CheckResult>) -> Option<Health> {
    Some(Health { status, log })
}

fn calls_since(engine: &FakeEngine, before: usize) -> Vec<String> {
    engine.calls()[before..].to_vec()
}

fn never() -> bool {
    false
}

#[test]
fn a_start_creates_the_volumes_then_the_container_and_starts_it() {
    let engine = engine(Script::default());
    let request = request(&format!(
        "{WEB}[env]\nA = \"x\"\n\
         [[volume]]\nname = \"data\"\ntarget = \"/data\"\n\
         [[volume]]\nname = \"cache\"\ntarget = \"/cache\"\n\
         [[volume]]\ntype = \"tmpfs\"\ntarget = \"/tmp\"\n"
    ));
    let (plan, id) = start(&engine, &request, &Ports::free()).unwrap();
    assert_eq!(
        engine.calls(),
        [
            "create volume app_data",
            "create volume app_cache",
            "create app",
            "start app"
        ]
    );
    assert_eq!(engine.volume_names(), ["app_cache", "app_data"]);
    assert_eq!(
        engine.volumes(APP_LABEL, APP).unwrap(),
        ["app_cache", "app_data"]
    );
    assert_eq!(engine.spec(APP), Some(plan.spec.clone()));
    assert_eq!(plan.spec.env, ["A=x"]);
    assert_eq!(plan.published.len(), 1);
    assert_eq!(plan.published[0].host, 8000);
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    let info = engine.container(APP).unwrap().unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.state, State::Running);
    assert_eq!(info.labels.get(APP_LABEL).map(String::as_str), Some(APP));
}

#[test]
fn a_start_creates_the_folders_of_directory_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("a/b");
    let engine = engine(Script::default());
    let request = request(&format!(
        "[[volume]]\ntype = \"directory\"\nname = \"{}\"\ntarget = \"/data\"\n",
        folder.display()
    ));
    let (plan, _) = start(&engine, &request, &Ports::free()).unwrap();
    assert!(folder.is_dir());
    assert_eq!(plan.directories, [folder]);
    assert_eq!(engine.calls(), ["create app", "start app"]);
}

#[test]
fn a_directory_that_cannot_be_made_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let folder = file.join("sub");
    let engine = engine(Script::default());
    let request = request(&format!(
        "[[volume]]\ntype = \"directory\"\nname = \"{}\"\ntarget = \"/data\"\n",
        folder.display()
    ));
    let err = start(&engine, &request, &Ports::free()).unwrap_err();
    assert!(
        matches!(&err, Error::Directory { path, .. } if *path == folder),
        "{err:?}"
    );
    assert!(engine.calls().is_empty(), "{:?}", engine.calls());
}

#[rstest::rstest]
#[case::created(false)]
#[case::exited(true)]
fn a_stopped_container_of_the_app_is_replaced(#[case] ran: bool) {
    let engine = engine(Script::default());
    existing(&engine, &ours());
    if ran {
        engine.start_container(APP).unwrap();
        engine.stop_container(APP, TIMEOUT).unwrap();
        assert_eq!(engine.container(APP).unwrap().unwrap().state, State::Exited);
    }
    let before = engine.calls().len();
    let (plan, _) = start(&engine, &request(WEB), &Ports::free()).unwrap();
    assert_eq!(
        calls_since(&engine, before),
        ["remove app", "create app", "start app"]
    );
    assert_eq!(engine.spec(APP), Some(plan.spec));
    assert_eq!(
        engine.container(APP).unwrap().unwrap().state,
        State::Running
    );
}

#[test]
fn a_running_container_of_the_app_is_refused() {
    let engine = engine(Script::default());
    existing(&engine, &ours());
    engine.start_container(APP).unwrap();
    let before = engine.calls().len();
    let err = start(&engine, &request(WEB), &Ports::free()).unwrap_err();
    assert!(
        matches!(&err, Error::Running { name } if name == APP),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "`app` is already running");
    assert!(calls_since(&engine, before).is_empty());
    assert_eq!(engine.spec(APP).unwrap().env, ["OLD=1"]);
}

#[rstest::rstest]
#[case::created(false)]
#[case::running(true)]
fn a_container_not_made_by_nua_run_is_refused(#[case] running: bool) {
    let engine = engine(Script::default());
    existing(&engine, &[("other", "x")]);
    if running {
        engine.start_container(APP).unwrap();
    }
    let before = engine.calls().len();
    let err = start(&engine, &request(WEB), &Ports::free()).unwrap_err();
    assert!(
        matches!(&err, Error::Foreign { name } if name == APP),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "a container named `app` exists and was not made by `nua run`"
    );
    assert!(calls_since(&engine, before).is_empty());
    assert_eq!(engine.spec(APP).unwrap().env, ["OLD=1"]);
}

#[test]
fn a_port_taken_at_start_is_replaced_by_another() {
    let engine = engine(Script::default());
    engine.hold_port(8000);
    let (plan, _) = start(&engine, &request(WEB), &Ports::free()).unwrap();
    assert_eq!(
        engine.calls(),
        [
            "create app",
            "start app",
            "remove app",
            "create app",
            "start app"
        ]
    );
    assert_eq!(plan.published.len(), 1);
    assert_eq!(plan.published[0].container, 8000);
    assert_eq!(plan.published[0].host, FIRST_FREE);
    assert_eq!(engine.spec(APP).unwrap().ports[0].host, FIRST_FREE);
    assert_eq!(
        plan.notes,
        [format!(
            "port 8000 is taken: web is published on 127.0.0.1:{FIRST_FREE} instead"
        )]
    );
    assert_eq!(
        engine.container(APP).unwrap().unwrap().state,
        State::Running
    );
}

#[test]
fn ports_taken_again_and_again_end_in_an_error() {
    let engine = engine(Script::default());
    engine.hold_port(8000);
    for port in FIRST_FREE..FIRST_FREE + 20 {
        engine.hold_port(port);
    }
    let err = start(&engine, &request(WEB), &Ports::free()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Engine(nua_runtime::Error::PortTaken { port }) if port == FIRST_FREE + 4
        ),
        "{err:?}"
    );
    let calls = engine.calls();
    assert_eq!(calls.iter().filter(|c| *c == "create app").count(), 6);
    assert_eq!(calls.last().map(String::as_str), Some("remove app"));
    assert_eq!(engine.container(APP).unwrap(), None);
}

#[test]
fn a_port_retry_does_not_repeat_notes() {
    let engine = engine(Script::default());
    engine.hold_port(8000);
    let request = request(&format!("{WEB}[env]\nDB_USER = {{ unique_user = true }}\n"));
    let (plan, _) = start(&engine, &request, &Ports::free()).unwrap();
    assert_eq!(
        plan.notes,
        [
            "`DB_USER` is computed by a deployment (a unique user name); it is not set: give it with `--env DB_USER=…`".to_owned(),
            format!("port 8000 is taken: web is published on 127.0.0.1:{FIRST_FREE} instead"),
        ]
    );
}

#[test]
fn a_failed_start_leaves_no_container() {
    let engine = FakeEngine::new();
    let err = start(&engine, &request(WEB), &Ports::free()).unwrap_err();
    assert!(
        matches!(err, Error::Engine(nua_runtime::Error::NoSuchImage { .. })),
        "{err:?}"
    );
    assert_eq!(engine.container(APP).unwrap(), None);
}

#[test]
fn volumes_of_the_app_are_labelled() {
    let engine = engine(Script::default());
    let request = request("[[volume]]\nname = \"data\"\ntarget = \"/data\"\n");
    let (plan, _) = start(&engine, &request, &Ports::free()).unwrap();
    assert_eq!(
        plan.volumes,
        [VolumeSpec {
            name: "app_data".into(),
            driver: None,
            options: BTreeMap::new(),
            labels: BTreeMap::from([(APP_LABEL.into(), APP.into())]),
        }]
    );
    assert_eq!(engine.volumes(APP_LABEL, APP).unwrap(), ["app_data"]);
    assert_eq!(
        engine.volumes(APP_LABEL, "other").unwrap(),
        Vec::<String>::new()
    );
}

mod foreground;
mod wait_ready;
