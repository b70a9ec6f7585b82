//! After its Docker daemon restarts (which stops every container), the deployed instances come
//! back on their data: by Docker's restart policy (`unless-stopped`, Nua's default), and by
//! `nua server` for a container whose `[docker]` options say Docker must not restart it. In a test binary of its own: restarting the
//! daemon would stop the containers of the tests running beside it. It restarts only the
//! dockerd that `scripts/test-env.sh` started (as `scripts/test.sh` does), never a service of
//! the machine.
//!
//! A `nua run --watch` whose containers (the serving one, the standby) Docker stopped that
//! way serves the next edit from a new container, then has a standby again.

mod common;

use std::process::Command;
use std::time::Duration;

use common::deploy::*;
use common::docker::{http_get, restart_dockerd};

/// Held by each test: a restart stops the containers of the others.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn after_dockerd_restarts_nua_server_brings_the_instance_back_with_its_data() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (work, env) = setup("8500-8599");
    let (label, _deployed) = Deployed::label("counter-r", &env);
    let file = deploy_file(work.path(), std::slice::from_ref(&label));
    // The app asks Docker never to restart it; its database keeps Nua's default.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text + "docker = { restart_policy = \"no\" }\n").unwrap();
    env.ok(&["deploy", file.to_str().unwrap(), "-q"]);
    let port = ports(&env)[0].1;
    assert_eq!(get(port, "/hit"), format!("{label} hits=1\n"));

    restart_dockerd();
    // Docker brings the database back by itself; the app, asked not to be, stays down.
    let db = format!("nua-{label}-database");
    let running = |name: &str| {
        Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", name])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    };
    wait_until(60, "Docker restarting the database", || running(&db));
    assert!(
        !running(&format!("nua-{label}")),
        "Docker restarted the app"
    );
    assert!(http_get(port, "/").is_err(), "the app answers without nua");

    let mut server = env.spawn(&["server", "--interval", "1"]);
    wait_until(180, "the instance answering again", || {
        http_get(port, "/").is_ok_and(|(_, body)| body == format!("{label} hits=1\n"))
    });
    // SAFETY: the pid is our child's.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());
}

#[test]
fn a_watch_serves_the_next_edit_after_dockerd_restarts() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut watch = common::watch::Watch::start("watch-restart", |_| {});
    let standby = format!("{}.standby", watch.name);
    wait_until(30, "a standby", || common::run::container_exists(&standby));

    restart_dockerd();
    // Docker stopped both; Nua says so of the one serving, and connections wait.
    watch.line_with(
        &format!("{} exited", watch.name),
        &["reloaded"],
        Duration::from_secs(120),
    );
    // The standby stopped too: the edit is served by a new container, which says why.
    common::watch::edit_greeting(&watch.app);
    let reloaded = watch.reloaded();
    assert!(
        reloaded.contains("a new container") || reloaded.contains("build and load"),
        "{reloaded}"
    );
    let (status, body) = common::docker::wait_for_http(watch.port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert_eq!(body, common::watch::NEW);
    // The next edit has a standby again.
    common::watch::edit(
        &watch.app,
        &[(common::watch::NEW_GREETING_LINE, r#"}!!!\n""#)],
    );
    let reloaded = watch.reloaded();
    assert!(reloaded.contains("1 file written"), "{reloaded}");
    watch.ctrl_c_removes_everything();
}
