//! `NUA_ENGINE=swarm` on a real single-node Docker Swarm on 127.0.0.1: the PostgreSQL counter
//! as two services on an overlay network, served by Nua's nginx as a third; its generated
//! password a Swarm secret that no `docker service inspect` shows; upgrades under load
//! without a failed request, one Swarm rolls back when the new version never gets healthy;
//! a deploy killed mid-update and a restart of Docker, both converged; a backup restored.
//! The swarm is made for the test and left after it, unless the machine was in one before.
//! In a test binary of its own, one test: it restarts the dockerd `scripts/test-env.sh`
//! started.

mod common;

use std::process::Command;

use common::deploy::*;
use common::docker::{http_get_host, restart_dockerd};
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
        // The proxy's service outlives instances; the test's goes with the test.
        for what in [
            ["service", "rm", "nua-proxy"],
            ["network", "rm", "nua-proxy"],
        ] {
            let _ = Command::new("docker").args(what).output();
        }
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
fn an_instance_on_swarm_is_served_through_the_proxy_service_and_keeps_its_data_and_secrets() {
    let (work, env) = setup_with("9300-9349", &["postgres-15", "nginx"]);
    let _swarm = SwarmGuard::new();
    let (label, _deployed) = Deployed::label("counter-s", &env);
    let host = format!("{label}.example.com");
    let file = work.path().join("deploy.toml");
    let write = |extra: &str| {
        let text = format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\ndomain = \"{host}\"\n{extra}",
            fixture_app("pg-counter").display()
        );
        std::fs::write(&file, text).unwrap();
    };
    write("");
    let file = file.to_str().unwrap();
    let proxy_port = 7280;
    let (http, https) = (proxy_port.to_string(), (proxy_port + 1).to_string());
    let proxy_dir = work.path().join("proxy");
    let vars = [
        ("NUA_ENGINE", "swarm"),
        ("NUA_PROXY", "swarm"),
        ("NUA_ACME", "off"),
        ("NUA_HTTP_PORT", http.as_str()),
        ("NUA_HTTPS_PORT", https.as_str()),
        ("NUA_PROXY_DIR", proxy_dir.to_str().unwrap()),
        ("NUA_DRAIN_SECONDS", "1"),
    ];
    let nua = |args: &[&str]| {
        let out = env.nua_with(args, &vars);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &stderr,
        )
    };
    let get = |path: &str| http_get_host(proxy_port, &host, path).unwrap().1;
    let (code, said) = nua(&["deploy", file]);
    assert_eq!(code, Some(0), "{said}");

    // Two services, converged, and Nua's nginx as a third, found by name on its network.
    let (app, db) = (format!("nua-{label}"), format!("nua-{label}-database"));
    for service in [app.as_str(), db.as_str(), "nua-proxy"] {
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
    assert_eq!(get("/hit"), format!("{label} hits=1\n"));

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
    assert!(container.contains("nua-env"), "{container}");

    // An upgrade under load: Swarm starts the new task first, nginx finds it by name, and
    // not one request fails.
    write("env = { GREETING = \"v2\" }\n");
    let load = Load::start(proxy_port, &host, "/health");
    let (code, said) = nua(&["deploy", file]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    load.finish_without_loss();
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("holds the data of generation 1, verified"),
        "{said}"
    );
    assert_eq!(get("/"), format!("{label} hits=1 v2\n"));

    // A new version that never gets healthy, under load: Swarm rolls it back, the deploy
    // fails with the new task's last lines, and every request was answered by the old one.
    write("env = { GREETING = \"v2\", DB_NAME = \"missing\" }\n");
    let load = Load::start(proxy_port, &host, "/health");
    let (code, said) = nua(&["deploy", file, "--no-backup"]);
    load.finish_without_loss();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("Swarm rolled the update back"), "{said}");
    assert!(
        said.contains("database \"missing\" does not exist"),
        "{said}"
    );
    assert_eq!(get("/hit"), format!("{label} hits=2 v2\n"));

    // Going back a generation is an update of the service too, under the same load.
    let load = Load::start(proxy_port, &host, "/health");
    let (code, said) = nua(&["rollback", &label]);
    load.finish_without_loss();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(get("/"), format!("{label} hits=2\n"));

    // `nua deploy` killed while Swarm updates the app: Swarm goes on by itself, and `nua
    // reconcile` puts back the generation the journal recorded as running, on its data,
    // every request answered meanwhile.
    write("env = { GREETING = \"v3\" }\n");
    let load = Load::start(proxy_port, &host, "/health");
    let mut deploy = env.spawn_with(&["deploy", file, "--no-backup"], &vars);
    wait_until(60, "Swarm updating the app", || {
        docker(&["service", "inspect", "-f", "{{.UpdateStatus.State}}", &app]).trim() == "updating"
    });
    deploy.kill().unwrap();
    deploy.wait().unwrap();
    let (code, said) = nua(&["reconcile", &label]);
    load.finish_without_loss();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(get("/"), format!("{label} hits=2\n"));

    // Docker restarted under it (a reboot, an upgrade of Docker): Swarm starts the tasks
    // again by itself, on their data, nginx among them, and `nua reconcile` finds everything
    // as recorded.
    restart_dockerd();
    wait_until(180, "the app answering through the proxy again", || {
        http_get_host(proxy_port, &host, "/health")
            .is_ok_and(|(status, _)| status.contains(" 200 "))
    });
    let (code, said) = nua(&["reconcile", &label]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains(&format!("{label}: unchanged")), "{said}");
    assert_eq!(get("/"), format!("{label} hits=2\n"));

    // A backup, verified; what comes after it is undone by a restore.
    let (code, said) = nua(&["backup", &label]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("database verified"), "{said}");
    assert_eq!(get("/hit"), format!("{label} hits=3\n"));
    let (code, said) = nua(&["restore", &label]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(get("/hit"), format!("{label} hits=3\n"));

    // `nua nodes` shows this node running all three.
    let (code, said) = nua(&["nodes", "--json"]);
    assert_eq!(code, Some(0), "{said}");
    let nodes: serde_json::Value = serde_json::from_str(said.lines().next().unwrap()).unwrap();
    let running = nodes[0]["running"].as_array().unwrap();
    for service in [&app, &db] {
        assert!(running.contains(&serde_json::json!(service)), "{nodes}");
    }

    // Removed with its volumes: no service, secret or volume of it is left, and the proxy
    // no longer serves its host.
    let (code, said) = nua(&["remove", &label, "--volumes"]);
    assert_eq!(code, Some(0), "{said}");
    let left = docker(&["service", "ls", "--format", "{{.Name}}"])
        + &docker(&["secret", "ls", "--format", "{{.Name}}"])
        + &docker(&["network", "ls", "--format", "{{.Name}}"])
        + &docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!left.contains(&app), "{left}");
    assert!(get("/").contains("404"), "{}", get("/"));

    // An app that must never run twice is stopped first (`stop-first`): meanwhile the proxy
    // answers 503 with `Retry-After`, never a connection error, a bare 502 or nothing. Its
    // route says so itself while the task is replaced, rather than try a task going away.
    let (single, _single) = Deployed::label("single-s", &env);
    let single_host = format!("{single}.example.com");
    let write_single = |greeting: &str| {
        let text = format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{single}\"\ndomain = \"{single_host}\"\n\
             env = {{ GREETING = \"{greeting}\" }}\n",
            fixture_app("single-writer").display()
        );
        std::fs::write(work.path().join("single.toml"), text).unwrap();
    };
    let single_file = work.path().join("single.toml");
    let single_file = single_file.to_str().unwrap();
    write_single("v1");
    let (code, said) = nua(&["deploy", single_file]);
    assert_eq!(code, Some(0), "{said}");
    let order = docker(&[
        "service",
        "inspect",
        "-f",
        "{{.Spec.UpdateConfig.Order}}",
        &format!("nua-{single}"),
    ]);
    assert_eq!(order.trim(), "stop-first");
    let load = MaintenanceLoad::start(proxy_port, &single_host);
    write_single("v2");
    let (code, said) = nua(&["deploy", single_file]);
    let unavailable = load.finish_with_503s_only();
    assert_eq!(code, Some(0), "{said}");
    assert!(
        unavailable
            .iter()
            .any(|body| body.contains(&format!("{single} is being upgraded"))),
        "{unavailable:?}"
    );
}
