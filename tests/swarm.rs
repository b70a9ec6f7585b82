//! `NUA_ENGINE=swarm` on a real single-node Docker Swarm on 127.0.0.1: the PostgreSQL counter
//! as two services on an overlay network, its generated password a Swarm secret that no
//! `docker service inspect` shows, an upgrade Swarm rolls back when the new version never
//! gets healthy, and a backup restored. The swarm is made for the test and left after it,
//! unless the machine was in one before.

mod common;

use std::process::Command;

use common::deploy::*;
use common::*;

/// A swarm for the test: `docker swarm init` on 127.0.0.1 when the engine is in none, and
/// `docker swarm leave --force` when the guard is dropped (only then), with the bridge
/// `docker_gwbridge` Docker made for it.
struct SwarmGuard {
    made: bool,
    gateway_before: bool,
}

impl SwarmGuard {
    fn new() -> SwarmGuard {
        let state =
            run_ok(Command::new("docker").args(["info", "--format", "{{.Swarm.LocalNodeState}}"]));
        let made = state.trim() == "inactive";
        let gateway_before = Command::new("docker")
            .args(["network", "inspect", "docker_gwbridge"])
            .output()
            .is_ok_and(|o| o.status.success());
        if made {
            run_ok(Command::new("docker").args(["swarm", "init", "--advertise-addr", "127.0.0.1"]));
        }
        SwarmGuard {
            made,
            gateway_before,
        }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if self.made {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
            if !self.gateway_before {
                let _ = Command::new("docker")
                    .args(["network", "rm", "docker_gwbridge"])
                    .output();
            }
        }
    }
}

/// What the app answers at `path`, asked from a container on the instance's overlay network
/// (the host cannot reach into it), by the app's name there.
fn ask(label: &str, image: &str, path: &str) -> String {
    let code = format!(
        "import urllib.request, urllib.error\n\
         try:\n    print(urllib.request.urlopen('http://app:8000{path}', timeout=10).read().decode(), end='')\n\
         except urllib.error.HTTPError as e:\n    print(e.code)"
    );
    run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        &format!("nua-{label}"),
        "--entrypoint",
        "python3",
        image,
        "-c",
        &code,
    ]))
}

fn docker(args: &[&str]) -> String {
    run_ok(Command::new("docker").args(args))
}

/// The container of the running task of service `service`.
fn task_container(service: &str) -> String {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let ids = docker(&["ps", "-q", "--filter", &filter]);
    let id = ids.lines().next().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "no running task of {service}");
    id
}

#[test]
fn an_instance_on_swarm_keeps_its_secrets_out_of_sight_rolls_back_and_restores() {
    let (work, env) = setup("9300-9349");
    let _swarm = SwarmGuard::new();
    let (label, _deployed) = Deployed::label("counter-s", &env);
    let file = work.path().join("deploy.toml");
    let write = |extra: &str| {
        let text = format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\n{extra}",
            fixture_app("pg-counter").display()
        );
        std::fs::write(&file, text).unwrap();
    };
    write("");
    let file = file.to_str().unwrap();
    let swarm = [("NUA_ENGINE", "swarm")];
    let out = env.nua_with(&["deploy", file], &swarm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // Two services, converged: each runs its one task.
    let (app, db) = (format!("nua-{label}"), format!("nua-{label}-database"));
    for service in [&app, &db] {
        let replicas = docker(&[
            "service",
            "ls",
            "--filter",
            &format!("name={service}"),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ]);
        assert!(replicas.contains(&format!("{service} 1/1")), "{replicas}");
    }
    let image = docker(&["service", "inspect", "-f", "{{.Spec.Labels}}", &app]);
    assert!(image.contains("nua.instance:"), "{image}");
    let app_image = docker(&[
        "service",
        "inspect",
        "-f",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        &app,
    ]);
    let app_image = app_image.trim().split('@').next().unwrap().to_owned();
    assert_eq!(ask(&label, &app_image, "/hit"), format!("{label} hits=1\n"));

    // The database's password is a Swarm secret: the database reads it from a file, the
    // app's copy is read by a shell before its command; neither service's spec nor the
    // app's container shows it.
    let password = docker(&[
        "exec",
        &task_container(&db),
        "cat",
        "/run/secrets/POSTGRES_PASSWORD",
    ]);
    assert_eq!(password.len(), 24, "{password:?}");
    let secrets = docker(&["secret", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        secrets.lines().filter(|s| s.starts_with(&app)).count(),
        2,
        "{secrets}"
    );
    for service in [&app, &db] {
        let inspected = docker(&["service", "inspect", service]);
        assert!(!inspected.contains(&password), "{inspected}");
    }
    let container = docker(&["inspect", &task_container(&app)]);
    assert!(!container.contains(&password));
    assert!(container.contains("POSTGRES_PASSWORD") || container.contains("nua-env"));

    // An upgrade whose new version never gets healthy: Swarm rolls it back, the deploy
    // fails with the new task's last lines, and the old version answers with its data.
    write("env = { DB_NAME = \"missing\" }\n");
    let out = env.nua_with(&["deploy", file, "--no-backup"], &swarm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Swarm rolled the update back"), "{stderr}");
    assert!(
        stderr.contains("database \"missing\" does not exist"),
        "{stderr}"
    );
    assert_eq!(ask(&label, &app_image, "/hit"), format!("{label} hits=2\n"));

    // A backup, verified; what comes after it is undone by a restore.
    write("");
    let out = env.nua_with(&["backup", &label], &swarm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("database verified"), "{stderr}");
    assert_eq!(ask(&label, &app_image, "/hit"), format!("{label} hits=3\n"));
    let out = env.nua_with(&["restore", &label], &swarm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(ask(&label, &app_image, "/hit"), format!("{label} hits=3\n"));

    // `nua nodes` shows this node running both.
    let nodes: serde_json::Value = serde_json::from_str(&env.ok(&["nodes", "--json"])).unwrap();
    let running = nodes[0]["running"].as_array().unwrap();
    assert!(running.contains(&serde_json::json!(app)), "{nodes}");
    assert!(running.contains(&serde_json::json!(db)), "{nodes}");

    // Removed with its volumes: no service, secret, network or volume is left.
    env.ok(&["remove", &label, "--volumes"]);
    let left = docker(&["service", "ls", "--format", "{{.Name}}"])
        + &docker(&["secret", "ls", "--format", "{{.Name}}"])
        + &docker(&["network", "ls", "--format", "{{.Name}}"])
        + &docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!left.contains(&app), "{left}");
}
