use std::path::Path;

use nua_config::{deploy, Format, LoadOptions, NuaConfig};
use nua_runtime::fake::{FakeEngine, Script};
use nua_runtime::{Health, HealthStatus, ImageDetails, LogLine, State, Stream};

use super::*;

mod swarm;
use crate::instance::{plan, Placement, TakenPorts, PORT_RANGE};

const CONFIG: &str = r#"
[metadata]
id = "notes"
version = "1.0"

[run]
start = "notes"

[env]
DB_HOST = { from = "database", key = "hostname" }
DB_PASSWORD = { from = "database", key = "POSTGRES_PASSWORD" }

[port.web]
container = 8000

[[provider]]
name = "database"
module-name = "postgres"
module-version = ">=15, <16"
"#;

const APP_IMAGE: &str = "nua-notes:1.0";
const PG_IMAGE: &str = "nua-postgres-15:latest";

struct Free;

impl TakenPorts for Free {
    fn holder(&self, _: u16) -> Option<String> {
        None
    }
}

fn config(text: &str) -> NuaConfig {
    nua_config::load_str(
        text,
        Format::Toml,
        Path::new("nua-config.toml"),
        &LoadOptions::default(),
    )
    .unwrap()
    .0
}

fn desired(config_text: &str, image: &str) -> Desired {
    planned(
        config_text,
        image,
        "[[site]]\nimage = \"notes\"\nlabel = \"n\"\n",
        &Free,
    )
}

/// The desired state of the site `site_text` of `config_text` on image `image`.
fn planned(config_text: &str, image: &str, site_text: &str, taken: &dyn TakenPorts) -> Desired {
    let site = &deploy::load_deploy_str(site_text, Format::Toml, Path::new("deploy.toml"))
        .unwrap()
        .0
        .site[0];
    let provider_image = |_: &nua_config::Provider| Some(PG_IMAGE.to_owned());
    let placement = Placement {
        taken,
        range: PORT_RANGE,
        previous: None,
    };
    plan(
        site,
        image,
        &config(config_text),
        &provider_image,
        &placement,
    )
    .unwrap()
}

fn engine(pg_health: HealthStatus) -> FakeEngine {
    let engine = FakeEngine::new();
    engine.add_image(APP_IMAGE, ImageDetails::default());
    engine.add_image("nua-notes:2.0", ImageDetails::default());
    engine.add_image(PG_IMAGE, ImageDetails::default());
    engine.script(
        PG_IMAGE,
        Script {
            logs: vec![LogLine {
                stream: Stream::Stderr,
                text: "FATAL: data directory has wrong ownership".into(),
            }],
            health: Some(Health {
                status: pg_health,
                log: Vec::new(),
            }),
            ..Script::default()
        },
    );
    engine
}

fn ctx(engine: &FakeEngine) -> Context<'_> {
    Context {
        engine,
        swarm: None,
        external_ip: None,
        ready_timeout: Duration::from_secs(5),
        stopped: false,
        proxy: None,
        drain: Duration::ZERO,
    }
}

/// [`CONFIG`] without its database, and without what the app read of it.
fn without_provider() -> String {
    CONFIG
        .split("[[provider]]")
        .next()
        .unwrap()
        .replace(
            "DB_HOST = { from = \"database\", key = \"hostname\" }\n",
            "",
        )
        .replace(
            "DB_PASSWORD = { from = \"database\", key = \"POSTGRES_PASSWORD\" }\n",
            "",
        )
}

fn env_of(engine: &FakeEngine, name: &str, key: &str) -> String {
    let spec = engine.spec(name).unwrap();
    let prefix = format!("{key}=");
    spec.env
        .iter()
        .find_map(|e| e.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {key} in {:?}", spec.env))
}

#[test]
fn an_instance_is_made_providers_first_and_a_second_apply_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    // Docker still says `starting`: the protocol check says ready first.
    let engine = engine(HealthStatus::Starting);
    let want = desired(CONFIG, APP_IMAGE);
    let applied = apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    assert_eq!(applied.created, ["nua-n-database", "nua-n"]);
    assert_eq!(applied.volumes_created, ["nua-n-postgres-data"]);
    let calls: Vec<String> = engine
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("create") || c.starts_with("start"))
        .collect();
    assert_eq!(
        calls,
        [
            "create volume nua-n-postgres-data",
            "create nua-n-database",
            "start nua-n-database",
            "create nua-n",
            "start nua-n"
        ]
    );
    // The database was found ready by its protocol check, not by waiting for Docker's.
    assert!(
        engine
            .calls()
            .contains(&"exec nua-n-database pg_isready -q -h 127.0.0.1".to_owned()),
        "{:?}",
        engine.calls()
    );
    // The app reads what its database was given; the database answers to its name.
    let password = env_of(&engine, "nua-n-database", "POSTGRES_PASSWORD");
    assert_eq!(env_of(&engine, "nua-n", "DB_PASSWORD"), password);
    assert_eq!(env_of(&engine, "nua-n", "DB_HOST"), "database");
    let db = engine.spec("nua-n-database").unwrap();
    assert_eq!(db.aliases, ["database"]);
    assert!(db.ports.is_empty(), "a provider is never published");
    assert_eq!(db.network.as_deref(), Some("nua-n"));
    assert_eq!(db.labels[INSTANCE_LABEL], "n");
    assert_eq!(db.labels[ROLE_LABEL], "provider");
    assert_eq!(db.labels[GENERATION_LABEL], "1");
    let app = engine.spec("nua-n").unwrap();
    assert_eq!(app.ports[0].host_ip.to_string(), "127.0.0.1");
    assert_eq!(app.ports[0].host, 8100);
    // No label or spec carries the secret.
    assert!(!format!("{:?}", app.labels).contains(&password));

    let before = engine.calls().len();
    let again = apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    assert!(again.unchanged(), "{again:?}");
    let made: Vec<String> = engine.calls()[before..]
        .iter()
        .filter(|c| !c.starts_with("exec"))
        .cloned()
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

#[test]
fn a_provider_removed_by_hand_comes_back_on_its_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    let want = desired(CONFIG, APP_IMAGE);
    apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    let password = env_of(&engine, "nua-n-database", "POSTGRES_PASSWORD");
    engine.remove_container("nua-n-database").unwrap();
    let applied = apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    assert_eq!(applied.created, ["nua-n-database"]);
    assert!(
        applied.volumes_created.is_empty(),
        "the data volume is kept"
    );
    assert_eq!(
        env_of(&engine, "nua-n-database", "POSTGRES_PASSWORD"),
        password
    );
}

#[test]
fn an_upgrade_replaces_the_app_and_keeps_the_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    apply(&desired(CONFIG, APP_IMAGE), 1, &ctx(&engine), &mut state).unwrap();
    let upgraded = desired(CONFIG, "nua-notes:2.0");
    let applied = apply(&upgraded, 2, &ctx(&engine), &mut state).unwrap();
    assert_eq!(applied.created, ["nua-n"]);
    assert_eq!(applied.removed, ["nua-n"]);
    assert_eq!(engine.spec("nua-n").unwrap().image, "nua-notes:2.0");
}

#[test]
fn a_provider_that_is_not_ready_stops_the_deploy_with_its_last_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Unhealthy);
    let err = apply(&desired(CONFIG, APP_IMAGE), 1, &ctx(&engine), &mut state).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("provider `database` of `n` is not ready")
            && message.contains("its health check fails")
            && message.contains("data directory has wrong ownership"),
        "{message}"
    );
    assert!(
        engine.spec("nua-n").is_none(),
        "the app is not started before its database"
    );
}

#[test]
fn a_provider_the_config_no_longer_has_is_removed_and_its_volume_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    apply(&desired(CONFIG, APP_IMAGE), 1, &ctx(&engine), &mut state).unwrap();
    let alone = without_provider();
    let applied = apply(&desired(&alone, APP_IMAGE), 2, &ctx(&engine), &mut state).unwrap();
    assert!(
        applied.removed.contains(&"nua-n-database".to_owned()),
        "{applied:?}"
    );
    assert!(engine.spec("nua-n-database").is_none());
    assert!(engine
        .volume_names()
        .contains(&"nua-n-postgres-data".to_owned()));
}

#[test]
fn a_stopped_instance_is_stopped_app_first_and_stays_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    let want = desired(CONFIG, APP_IMAGE);
    apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    let stopped = Context {
        stopped: true,
        ..ctx(&engine)
    };
    let applied = apply(&want, 1, &stopped, &mut state).unwrap();
    assert_eq!(applied.stopped, ["nua-n", "nua-n-database"]);
    let again = apply(&want, 1, &stopped, &mut state).unwrap();
    assert!(again.unchanged(), "{again:?}");
    let started = apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    assert_eq!(started.started, ["nua-n-database", "nua-n"]);
}

#[test]
fn an_app_that_exits_and_is_restarted_by_docker_is_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    engine.script(
        APP_IMAGE,
        Script {
            exits_with: Some(3),
            ..Script::default()
        },
    );
    let err = apply(&desired(CONFIG, APP_IMAGE), 1, &ctx(&engine), &mut state).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("the app of `n` is not ready")
            && message.contains("it exited with code 3 and Docker restarted it"),
        "{message}"
    );
}

#[test]
fn docker_options_reach_the_containers_and_a_changed_one_recreates_only_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    let with_db_options = CONFIG.to_owned()
        + "[provider.docker]\nrestart_policy = { name = \"always\" }\nshm_size = \"256m\"\n";
    apply(
        &desired(&with_db_options, APP_IMAGE),
        1,
        &ctx(&engine),
        &mut state,
    )
    .unwrap();
    let db = engine.spec("nua-n-database").unwrap();
    assert_eq!(db.restart, nua_runtime::Restart::Always);
    assert_eq!(db.limits.shm_bytes, Some(256 << 20));
    // The app has none: it restarts unless stopped.
    let app = engine.spec("nua-n").unwrap();
    assert_eq!(app.restart, nua_runtime::Restart::UnlessStopped);
    assert_eq!(app.limits, nua_runtime::Limits::default());
    // Docker's init forwards signals to the app; the database handles its own.
    assert!(app.init && !db.init);

    let limited = with_db_options.replace(
        "[[provider]]",
        "[docker]\nmem_limit = \"512m\"\n\n[[provider]]",
    );
    let applied = apply(&desired(&limited, APP_IMAGE), 2, &ctx(&engine), &mut state).unwrap();
    assert_eq!(applied.created, ["nua-n"]);
    assert_eq!(
        engine.spec("nua-n").unwrap().limits.memory_bytes,
        Some(512 << 20)
    );
}

#[test]
fn a_paused_instance_stays_paused_through_an_apply_and_stops_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    let want = desired(CONFIG, APP_IMAGE);
    apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    engine.set_paused("nua-n", true).unwrap();
    let applied = apply(&want, 1, &ctx(&engine), &mut state).unwrap();
    assert!(applied.unchanged(), "{applied:?}");
    assert_eq!(
        engine.container("nua-n").unwrap().unwrap().state,
        State::Paused
    );
    let stopped = Context {
        stopped: true,
        ..ctx(&engine)
    };
    let applied = apply(&want, 1, &stopped, &mut state).unwrap();
    assert_eq!(applied.stopped, ["nua-n", "nua-n-database"]);
    assert_eq!(
        engine.container("nua-n").unwrap().unwrap().state,
        State::Exited
    );
}

/// The proxy as the switch tests see it: each call, in order.
#[derive(Default)]
struct FakeRoutes(std::sync::Mutex<Vec<String>>);

impl Routes for FakeRoutes {
    fn route(&self, desired: &Desired, maintenance: bool) -> Result<(), String> {
        let port = desired.containers.last().unwrap().ports[0].host.unwrap();
        let what = if maintenance { "503" } else { "serve" };
        self.0.lock().unwrap().push(format!("{what} {port}"));
        Ok(())
    }
}

struct Taken(u16);

impl TakenPorts for Taken {
    fn holder(&self, port: u16) -> Option<String> {
        (port == self.0).then(|| "the old app".to_owned())
    }
}

/// `config_text` deployed with a domain, its app on the first free port but `taken`.
fn with_domain(config_text: &str, image: &str, taken: u16) -> Desired {
    planned(
        config_text,
        image,
        "[[site]]\nimage = \"notes\"\nlabel = \"n\"\ndomain = \"n.example.com\"\n",
        &Taken(taken),
    )
}

fn switching<'a>(engine: &'a FakeEngine, routes: &'a FakeRoutes) -> Context<'a> {
    Context {
        proxy: Some(routes),
        ..ctx(engine)
    }
}

/// The calls of the engine from `from` on that made, started, stopped or renamed something.
fn moves(engine: &FakeEngine, from: usize) -> Vec<String> {
    engine.calls()[from..]
        .iter()
        .filter(|c| !c.starts_with("exec") && !c.contains("volume"))
        .cloned()
        .collect()
}

#[test]
fn an_upgrade_behind_the_proxy_starts_the_new_app_beside_the_old_and_switches() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    let routes = FakeRoutes::default();
    let first = with_domain(CONFIG, APP_IMAGE, 0);
    apply(&first, 1, &switching(&engine, &routes), &mut state).unwrap();
    // A first deploy has nothing to switch from.
    assert!(routes.0.lock().unwrap().is_empty());

    let before = engine.calls().len();
    let upgraded = with_domain(CONFIG, "nua-notes:2.0", 8100);
    let applied = apply(&upgraded, 2, &switching(&engine, &routes), &mut state).unwrap();
    assert_eq!(
        moves(&engine, before),
        [
            "create nua-n-next",
            "start nua-n-next",
            "stop nua-n",
            "rename nua-n nua-n-previous",
            "rename nua-n-next nua-n"
        ]
    );
    // The proxy was pointed at the new app (port 8101) before the old one stopped.
    assert_eq!(*routes.0.lock().unwrap(), ["serve 8101"]);
    assert_eq!(applied.created, ["nua-n"]);
    assert_eq!(engine.spec("nua-n").unwrap().image, "nua-notes:2.0");
    assert_eq!(
        engine.container("nua-n-previous").unwrap().unwrap().state,
        State::Exited
    );
    // The kept app is not an orphan: applying again keeps it, and changes nothing.
    let again = apply(&upgraded, 2, &switching(&engine, &routes), &mut state).unwrap();
    assert!(again.unchanged(), "{again:?}");
    assert!(engine.container("nua-n-previous").unwrap().is_some());
}

#[test]
fn a_new_app_that_never_gets_ready_is_removed_and_the_old_one_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    let routes = FakeRoutes::default();
    apply(
        &with_domain(CONFIG, APP_IMAGE, 0),
        1,
        &switching(&engine, &routes),
        &mut state,
    )
    .unwrap();
    engine.script(
        "nua-notes:2.0",
        Script {
            exits_with: Some(1),
            ..Script::default()
        },
    );
    let before = engine.calls().len();
    let err = apply(
        &with_domain(CONFIG, "nua-notes:2.0", 8100),
        2,
        &switching(&engine, &routes),
        &mut state,
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("the app of `n` is not ready"),
        "{err}"
    );
    assert_eq!(
        moves(&engine, before),
        ["create nua-n-next", "start nua-n-next", "remove nua-n-next"]
    );
    assert!(
        routes.0.lock().unwrap().is_empty(),
        "the proxy was switched"
    );
    let old = engine.container("nua-n").unwrap().unwrap();
    assert_eq!(
        (old.state, engine.spec("nua-n").unwrap().image.as_str()),
        (State::Running, APP_IMAGE)
    );
}

#[test]
fn a_single_writer_app_is_stopped_first_while_the_proxy_answers_503() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = engine(HealthStatus::Healthy);
    let routes = FakeRoutes::default();
    let single = CONFIG.replace(
        "start = \"notes\"",
        "start = \"notes\"\nsingle-writer = true",
    );
    apply(
        &with_domain(&single, APP_IMAGE, 0),
        1,
        &switching(&engine, &routes),
        &mut state,
    )
    .unwrap();
    let before = engine.calls().len();
    apply(
        &with_domain(&single, "nua-notes:2.0", 0),
        2,
        &switching(&engine, &routes),
        &mut state,
    )
    .unwrap();
    assert_eq!(
        moves(&engine, before),
        ["stop nua-n", "remove nua-n", "create nua-n", "start nua-n"]
    );
    assert_eq!(*routes.0.lock().unwrap(), ["503 8100", "serve 8100"]);
}
