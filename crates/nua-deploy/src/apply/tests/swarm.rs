//! The reconciler on a Swarm's fake: the same desired states as services.

use nua_runtime::fake::FakeEngine;
use nua_runtime::swarm::fake::FakeSwarm;
use nua_runtime::swarm::Order;
use nua_runtime::{HealthStatus, ImageDetails};

use super::*;
use crate::instance::EngineKind;

fn on_swarm(mut desired: Desired) -> Desired {
    desired.engine = EngineKind::Swarm;
    desired
}

fn images() -> FakeEngine {
    let engine = super::engine(HealthStatus::Healthy);
    let app = ImageDetails {
        cmd: vec!["/nua-start".to_owned()],
        health_check: Some(vec![
            "CMD-SHELL".to_owned(),
            "curl -f localhost:8000".to_owned(),
        ]),
        ..ImageDetails::default()
    };
    engine.add_image(APP_IMAGE, app.clone());
    engine.add_image("nua-notes:2.0", app.clone());
    engine.add_image("nua-notes:3.0", app.clone());
    engine.add_image("nua-notes:4.0", app);
    engine
}

fn swarm_ctx<'a>(engine: &'a FakeEngine, swarm: &'a FakeSwarm) -> Context<'a> {
    Context {
        swarm: Some(swarm),
        ..super::ctx(engine)
    }
}

fn secret_env(swarm: &FakeSwarm, service: &str) -> String {
    let spec = swarm.spec(service).unwrap();
    let file = spec.secrets.iter().find(|s| s.file == "nua-env").unwrap();
    String::from_utf8(swarm.secret_data(&file.secret).unwrap()).unwrap()
}

/// What runs each component of `desired`, by platform: its image.
fn images_running(desired: &Desired, image_of: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    desired
        .containers
        .iter()
        .map(|c| image_of(&c.name).unwrap_or_else(|| format!("{} missing", c.name)))
        .collect()
}

#[test]
fn the_reconciler_does_the_same_on_both_engines() {
    let alone = without_provider();
    for kind in [EngineKind::Docker, EngineKind::Swarm] {
        let tmp = tempfile::tempdir().unwrap();
        let mut state = state::State::open(tmp.path()).unwrap();
        let engine = images();
        let swarm = FakeSwarm::new();
        let ctx = swarm_ctx(&engine, &swarm);
        let image_of = |name: &str| match kind {
            EngineKind::Docker => engine.spec(name).map(|s| s.image),
            EngineKind::Swarm => swarm.spec(name).map(|s| s.image),
        };
        let with = |config: &str, image: &str| {
            let mut d = desired(config, image);
            d.engine = kind;
            d
        };
        // Made, providers first.
        let first = with(CONFIG, APP_IMAGE);
        let applied = apply(&first, 1, &ctx, &mut state).unwrap();
        assert_eq!(applied.created, ["nua-n-database", "nua-n"], "{kind:?}");
        assert_eq!(
            images_running(&first, &image_of),
            [PG_IMAGE, APP_IMAGE],
            "{kind:?}"
        );
        // Applied again: nothing to do.
        let again = apply(&first, 1, &ctx, &mut state).unwrap();
        assert!(again.unchanged(), "{kind:?}: {again:?}");
        // An upgrade replaces the app only.
        let upgraded = with(CONFIG, "nua-notes:2.0");
        let applied = apply(&upgraded, 2, &ctx, &mut state).unwrap();
        assert_eq!(applied.created, ["nua-n"], "{kind:?}");
        assert_eq!(
            images_running(&upgraded, &image_of),
            [PG_IMAGE, "nua-notes:2.0"],
            "{kind:?}"
        );
        // A provider the config no longer has is removed.
        let applied = apply(&with(&alone, "nua-notes:2.0"), 3, &ctx, &mut state).unwrap();
        assert!(
            applied.removed.contains(&"nua-n-database".to_owned()),
            "{kind:?}: {applied:?}"
        );
        assert_eq!(image_of("nua-n-database"), None, "{kind:?}");
    }
}

#[test]
fn on_swarm_secrets_are_swarm_secrets_and_no_service_spec_holds_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let want = on_swarm(desired(CONFIG, APP_IMAGE));
    apply(&want, 1, &swarm_ctx(&engine, &swarm), &mut state).unwrap();
    assert_eq!(swarm.networks(), ["nua-n"]);
    let db = swarm.spec("nua-n-database").unwrap();
    // The database image reads its password from the file `POSTGRES_PASSWORD_FILE` names.
    assert!(
        db.env
            .contains(&"POSTGRES_PASSWORD_FILE=/run/secrets/POSTGRES_PASSWORD".to_owned()),
        "{:?}",
        db.env
    );
    assert!(!db.env.iter().any(|e| e.starts_with("POSTGRES_PASSWORD=")));
    let file = db
        .secrets
        .iter()
        .find(|s| s.file == "POSTGRES_PASSWORD")
        .unwrap();
    let password = String::from_utf8(swarm.secret_data(&file.secret).unwrap()).unwrap();
    assert_eq!(password.len(), 24);
    // Its data is on this node, and stays there.
    assert_eq!(db.constraints, ["node.id==node-1"]);
    assert_eq!(
        db.networks,
        [("nua-n".to_owned(), vec!["database".to_owned()])]
    );
    // Its protocol check is its health check.
    assert_eq!(
        db.health_check.as_deref().map(|c| c.join(" ")),
        Some("pg_isready -q -h 127.0.0.1".to_owned())
    );
    // The app's copy is read by a shell from the secret `nua-env` before its own command.
    let app = swarm.spec("nua-n").unwrap();
    assert!(!app.env.iter().any(|e| e.starts_with("DB_PASSWORD")));
    assert!(app.env.contains(&"DB_HOST=database".to_owned()));
    assert_eq!(
        secret_env(&swarm, "nua-n"),
        format!("export DB_PASSWORD='{password}'\n")
    );
    assert_eq!(app.entrypoint.as_ref().unwrap()[..2], ["/bin/sh", "-c"]);
    assert_eq!(app.command.as_deref(), Some(&["/nua-start".to_owned()][..]));
    assert_eq!(app.order, Order::StartFirst);
    assert!(
        app.constraints.is_empty(),
        "an app without volumes goes anywhere"
    );
    assert_eq!(
        app.health_check.as_deref().map(|c| c.join(" ")),
        Some("/bin/sh -c curl -f localhost:8000".to_owned())
    );
    // No spec carries the password.
    for name in ["nua-n", "nua-n-database"] {
        let text = format!("{:?}", swarm.spec(name).unwrap());
        assert!(!text.contains(&password), "{text}");
    }
}

#[test]
fn on_swarm_an_update_swarm_rolls_back_is_an_error_and_the_old_version_runs_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let ctx = swarm_ctx(&engine, &swarm);
    apply(&on_swarm(desired(CONFIG, APP_IMAGE)), 1, &ctx, &mut state).unwrap();
    swarm.fail_image("nua-notes:3.0");
    let err = apply(
        &on_swarm(desired(CONFIG, "nua-notes:3.0")),
        2,
        &ctx,
        &mut state,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("the app of `n` is not ready")
            && err.contains("Swarm rolled the update back"),
        "{err}"
    );
    assert_eq!(swarm.spec("nua-n").unwrap().image, APP_IMAGE);
}

#[test]
fn on_swarm_a_changed_secret_is_a_new_secret_and_the_old_one_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let ctx = swarm_ctx(&engine, &swarm);
    let want = on_swarm(desired(CONFIG, APP_IMAGE));
    apply(&want, 1, &ctx, &mut state).unwrap();
    let before = swarm.spec("nua-n").unwrap().secrets[0].secret.clone();
    // A new password (its secrets forgotten, as `nua remove --volumes` does).
    state.forget_secrets("n").unwrap();
    apply(&want, 2, &ctx, &mut state).unwrap();
    let password = state
        .secret("n", "database/POSTGRES_PASSWORD/random")
        .unwrap()
        .unwrap();
    let after = swarm.spec("nua-n").unwrap().secrets[0].secret.clone();
    assert_ne!(before, after);
    assert!(swarm.secret_data(&before).is_none(), "{:?}", swarm.calls());
    assert_eq!(
        secret_env(&swarm, "nua-n"),
        format!("export DB_PASSWORD='{password}'\n")
    );
}

#[test]
fn on_swarm_a_single_writer_app_stops_first_and_a_stopped_instance_has_no_task() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let ctx = swarm_ctx(&engine, &swarm);
    let config = CONFIG.replace("[run]\n", "[run]\nsingle-writer = true\n");
    let want = on_swarm(desired(&config, APP_IMAGE));
    apply(&want, 1, &ctx, &mut state).unwrap();
    assert_eq!(swarm.spec("nua-n").unwrap().order, Order::StopFirst);
    let stopped = Context {
        stopped: true,
        ..swarm_ctx(&engine, &swarm)
    };
    let applied = apply(&want, 1, &stopped, &mut state).unwrap();
    assert_eq!(applied.stopped, ["nua-n-database", "nua-n"]);
    assert_eq!(swarm.spec("nua-n").unwrap().replicas, 0);
    assert!(apply(&want, 1, &stopped, &mut state).unwrap().unchanged());
    let started = apply(&want, 1, &ctx, &mut state).unwrap();
    assert_eq!(started.started, ["nua-n-database", "nua-n"]);
    assert_eq!(swarm.spec("nua-n-database").unwrap().replicas, 1);
}

#[test]
fn an_instance_on_swarm_needs_a_manager_and_makes_nothing_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::outside();
    let err = apply(
        &on_swarm(desired(CONFIG, APP_IMAGE)),
        1,
        &swarm_ctx(&engine, &swarm),
        &mut state,
    )
    .unwrap_err();
    assert!(matches!(err, Error::NoSwarm { .. }), "{err}");
    assert!(swarm.calls().is_empty());
    assert!(engine.calls().is_empty());
}

#[test]
fn a_placement_places_a_service_and_is_refused_on_one_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let ctx = swarm_ctx(&engine, &swarm);
    let site = "[[site]]\nimage = \"notes\"\nlabel = \"n\"\n\
                docker = { placement = \"node.labels.web == yes\" }\n";
    let placed = planned(CONFIG, APP_IMAGE, site, &Free);
    apply(&on_swarm(placed.clone()), 1, &ctx, &mut state).unwrap();
    assert_eq!(
        swarm.spec("nua-n").unwrap().constraints,
        ["node.labels.web == yes"]
    );
    let err = apply(&placed, 1, &ctx, &mut state).unwrap_err().to_string();
    assert!(
        err.contains("`placement` places the services of a Docker Swarm"),
        "{err}"
    );
    assert!(engine.spec("nua-n-database").is_none(), "nothing is made");
}

#[test]
fn an_earlier_version_applied_while_the_app_is_halted_starts_it_at_once() {
    // What `nua rollback --with-data` does: the app is halted for the data to be put back,
    // then an earlier generation (another spec) runs.
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let ctx = swarm_ctx(&engine, &swarm);
    let upgraded = on_swarm(desired(CONFIG, "nua-notes:2.0"));
    apply(&upgraded, 2, &ctx, &mut state).unwrap();
    let platform = platform(&upgraded, &ctx).unwrap();
    platform.halt(&upgraded.containers[1]).unwrap();
    assert_eq!(swarm.spec("nua-n").unwrap().replicas, 0);
    let earlier = on_swarm(desired(CONFIG, APP_IMAGE));
    let applied = apply(&earlier, 3, &ctx, &mut state).unwrap();
    assert_eq!(applied.created, ["nua-n"]);
    let app = swarm.spec("nua-n").unwrap();
    assert_eq!((app.image.as_str(), app.replicas), (APP_IMAGE, 1));
}

#[test]
fn options_a_swarm_cannot_honour_are_refused_by_name_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let ctx = swarm_ctx(&engine, &swarm);
    for (docker, expected) in [
        ("{ shm_size = \"64m\" }", "`shm_size`"),
        (
            "{ placement = \"node.labels.db == yes\" }",
            "must name its node",
        ),
    ] {
        let site = format!(
            "[[site]]\nimage = \"notes\"\nlabel = \"n\"\n\
             [[site.provider]]\nname = \"database\"\ndocker = {docker}\n"
        );
        let want = on_swarm(planned(CONFIG, APP_IMAGE, &site, &Free));
        let err = apply(&want, 1, &ctx, &mut state).unwrap_err().to_string();
        assert!(
            err.starts_with("`nua-n-database` on Docker Swarm") && err.contains(expected),
            "{err}"
        );
    }
    assert!(swarm.calls().is_empty(), "{:?}", swarm.calls());
}

/// The proxy as the reconciler drives it on a swarm: each change of route, with the image
/// the app's service had then.
struct SwarmRoutes<'a> {
    swarm: &'a FakeSwarm,
    seen: std::sync::Mutex<Vec<String>>,
}

impl Routes for SwarmRoutes<'_> {
    fn route(&self, desired: &Desired, maintenance: bool) -> Result<(), String> {
        let what = if maintenance { "503" } else { "serve" };
        let image = self.swarm.spec("nua-n").map(|s| s.image);
        let label = &desired.label;
        self.seen
            .lock()
            .unwrap()
            .push(format!("{what} {label} while {image:?}"));
        Ok(())
    }
}

#[test]
fn on_swarm_a_single_writer_app_is_answered_503_by_the_proxy_while_its_task_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = state::State::open(tmp.path()).unwrap();
    let engine = images();
    let swarm = FakeSwarm::new();
    let routes = SwarmRoutes {
        swarm: &swarm,
        seen: Default::default(),
    };
    let ctx = Context {
        proxy: Some(&routes),
        ..swarm_ctx(&engine, &swarm)
    };
    let single = CONFIG.replace("[run]\n", "[run]\nsingle-writer = true\n");
    let site = |image: &str| on_swarm(with_domain(&single, image, 0));
    // Made: nothing to stand in for.
    apply(&site(APP_IMAGE), 1, &ctx, &mut state).unwrap();
    assert!(routes.seen.lock().unwrap().is_empty());
    // Upgraded: 503 before the old task is asked to stop, served once the new one is ready.
    apply(&site("nua-notes:2.0"), 2, &ctx, &mut state).unwrap();
    assert_eq!(
        *routes.seen.lock().unwrap(),
        [
            format!("503 n while Some({APP_IMAGE:?})"),
            "serve n while Some(\"nua-notes:2.0\")".to_owned(),
        ]
    );
    // An update Swarm rolls back: served again, by the old version, and the error said.
    routes.seen.lock().unwrap().clear();
    swarm.fail_image("nua-notes:3.0");
    let err = apply(&site("nua-notes:3.0"), 3, &ctx, &mut state).unwrap_err();
    assert!(err.to_string().contains("rolled the update back"), "{err}");
    let seen = routes.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("503 n") && seen[1].starts_with("serve n"),
        "{seen:?}"
    );
    // An update the manager refuses: the old task never stopped, and is served again.
    routes.seen.lock().unwrap().clear();
    swarm.refuse_image("nua-notes:4.0");
    let err = apply(&site("nua-notes:4.0"), 4, &ctx, &mut state).unwrap_err();
    assert!(err.to_string().contains("POST /services/update"), "{err}");
    assert_eq!(
        *routes.seen.lock().unwrap(),
        [
            "503 n while Some(\"nua-notes:2.0\")".to_owned(),
            "serve n while Some(\"nua-notes:2.0\")".to_owned(),
        ]
    );
    // An app that may run twice is never taken off the proxy: Swarm starts the new task first.
    routes.seen.lock().unwrap().clear();
    apply(
        &on_swarm(with_domain(CONFIG, APP_IMAGE, 0)),
        5,
        &ctx,
        &mut state,
    )
    .unwrap();
    apply(
        &on_swarm(with_domain(CONFIG, "nua-notes:2.0", 0)),
        6,
        &ctx,
        &mut state,
    )
    .unwrap();
    assert!(routes.seen.lock().unwrap().is_empty());
}
