//! After its Docker daemon restarts (which stops every container), the deployed instances come
//! back on their data: by Docker's restart policy (`unless-stopped`, Nua's default), and by
//! `nua server` for a container whose `[docker]` options say Docker must not restart it. In a test binary of its own: restarting the
//! daemon would stop the containers of the tests running beside it. It restarts only the
//! dockerd that `scripts/test-env.sh` started (as `scripts/test.sh` does), never a service of
//! the machine.

mod common;

use std::process::Command;

use common::deploy::*;
use common::docker::http_get;
use common::*;

#[test]
fn after_dockerd_restarts_nua_server_brings_the_instance_back_with_its_data() {
    let (work, env) = setup("8500-8599");
    let (label, _deployed) = Deployed::label("counter-r", &env);
    let file = deploy_file(work.path(), std::slice::from_ref(&label));
    // The app asks Docker never to restart it; its database keeps Nua's default.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text + "docker = { restart_policy = \"no\" }\n").unwrap();
    env.ok(&["deploy", file.to_str().unwrap(), "-q"]);
    let port = ports(&env)[0].1;
    assert_eq!(get(port, "/hit"), format!("{label} hits=1\n"));

    let restarted = Command::new("bash")
        .arg(root().join("scripts/test-env.sh"))
        .arg("restart-dockerd")
        .output()
        .unwrap();
    assert!(
        restarted.status.success(),
        "cannot restart the test dockerd (run the suite with scripts/test.sh):\n{}",
        String::from_utf8_lossy(&restarted.stderr)
    );
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
