//! `nua deploy` on the real engine: two instances of the PostgreSQL counter (an app and its
//! database, Nua's own `postgres-15` image built from Debian) from one deploy file, each
//! with its own data; what a redeploy, a removal and a container removed by hand do to
//! them; and that the state database never holds a secret in clear.

mod common;

use std::process::Command;

use common::deploy::*;
use common::docker::{http_get, http_get_host};
use common::*;
use serde_json::Value;

#[test]
fn two_instances_keep_their_own_data_through_redeploys_and_removals() {
    let (work, mut env) = setup("8100-8199");
    // Both are served by Nua's own nginx, under `/a` and `/b` of one host.
    let proxy_port = 7200;
    let _proxy = env.with_proxy(proxy_port, work.path().join("proxy"));
    let pid = std::process::id();
    let host = format!("counters-{pid}.example.com");
    let via = |which: usize, path: &str| {
        let prefix = ["/a", "/b"][which];
        http_get_host(proxy_port, &host, &format!("{prefix}{path}")).unwrap()
    };
    let labels = vec![format!("counter-a-{pid}"), format!("counter-b-{pid}")];
    let deployed = Deployed {
        labels: labels.clone(),
        env: env.clone(),
    };
    let file = work.path().join("deploy.toml");
    let mut text = String::new();
    for (label, path) in labels.iter().zip(["a", "b"]) {
        text.push_str(&format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\ndomain = \"{host}/{path}\"\n\n",
            fixture_app("pg-counter").display()
        ));
    }
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    env.ok(&["deploy", file, "-q"]);

    // Each answers with its own database as soon as the deploy returns (the ready checks
    // passed), and Docker's own health checks agree once they have run.
    let ports = ports(&env);
    let (a, b) = (ports[0].1, ports[1].1);
    assert_ne!(a, b);
    assert_eq!(get(a, "/health"), "ok\n");
    assert_eq!(get(b, "/health"), "ok\n");
    let healthy = |status: &Value| {
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["health"] == "healthy" && i["providers"][0]["health"] == "healthy")
    };
    wait_until(60, "Docker's health checks passing", || {
        healthy(&serde_json::from_str(&env.ok(&["status", "--json"])).unwrap())
    });
    let status: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    for instance in status.as_array().unwrap() {
        assert_eq!(instance["state"], "running", "{instance}");
        assert_eq!(instance["generation"], 1, "{instance}");
        assert_eq!(instance["providers"][0]["name"], "database");
        assert_eq!(instance["providers"][0]["state"], "running");
        assert_eq!(instance["ports"][0]["host_ip"], "127.0.0.1");
    }
    assert_eq!(get(a, "/hit"), format!("{} hits=1\n", labels[0]));
    assert_eq!(get(a, "/hit"), format!("{} hits=2\n", labels[0]));
    assert_eq!(get(b, "/hit"), format!("{} hits=1\n", labels[1]));
    assert_eq!(via(0, "/").1, format!("{} hits=2\n", labels[0]));
    assert_eq!(via(1, "/").1, format!("{} hits=1\n", labels[1]));
    // The prefix is stripped: the app sees its own paths.
    assert_eq!(via(1, "/health").1, "ok\n");
    // The database is not published on the host.
    let db_ports =
        run_ok(Command::new("docker").args(["port", &format!("nua-{}-database", labels[0])]));
    assert_eq!(db_ports.trim(), "");

    // The same file again changes nothing, and says so.
    let id = |name: &str| run_ok(Command::new("docker").args(["inspect", "-f", "{{.Id}}", name]));
    let app_a = format!("nua-{}", labels[0]);
    let before = id(&app_a);
    let again = env.ok(&["deploy", file]);
    assert!(
        again.contains(&format!("{}: unchanged (generation 1)", labels[0])),
        "{again}"
    );
    assert_eq!(id(&app_a), before);

    // Removed without `--volumes`, then deployed again: the data is there.
    let removal = env.nua(&["remove", &labels[0]]);
    let said = String::from_utf8_lossy(&removal.stderr).into_owned();
    assert!(
        http_get(a, "/").is_err(),
        "the removed instance still answers"
    );
    let (status, _) = via(0, "/");
    assert!(status.contains(" 404 "), "{status}\n{said}");
    assert_eq!(via(1, "/").1, format!("{} hits=1\n", labels[1]));
    env.ok(&["deploy", file, "-q", "--label", &labels[0]]);
    assert_eq!(get(a, "/"), format!("{} hits=2\n", labels[0]));
    assert_eq!(via(0, "/").1, format!("{} hits=2\n", labels[0]));

    // A database container removed by hand comes back, on its data.
    let db_b = format!("nua-{}-database", labels[1]);
    run_ok(Command::new("docker").args(["rm", "-f", &db_b]));
    let out = env.ok(&["deploy", file]);
    assert!(out.contains(&format!("created {db_b}")), "{out}");
    assert_eq!(get(b, "/"), format!("{} hits=1\n", labels[1]));

    // The generated password reached the database, and neither file of the state has it.
    let password = run_ok(Command::new("docker").args([
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &db_b,
    ]))
    .lines()
    .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD=").map(str::to_owned))
    .unwrap();
    assert_eq!(password.len(), 24);
    for entry in std::fs::read_dir(&env.state).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "`{}` holds the password in clear",
            path.display()
        );
    }

    // A third site asking for a domain another instance serves: one error, nothing made.
    let third = work.path().join("third.toml");
    let other = format!("counter-c-{pid}");
    std::fs::write(
        &third,
        format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{other}\"\ndomain = \"{host}/a\"\n",
            fixture_app("pg-counter").display()
        ),
    )
    .unwrap();
    let out = env.nua(&["deploy", third.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("which `{}` serves", labels[0])),
        "{stderr}"
    );
    assert!(!container_named(&format!("nua-{other}-database")));

    // The journal: a deploy each, the removal, the deploy after it.
    let history: Value = serde_json::from_str(&env.ok(&["history", &labels[0], "--json"])).unwrap();
    let kinds: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["kind"].as_str().unwrap(), g["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("deploy", "succeeded"),
            ("remove", "succeeded"),
            ("deploy", "succeeded")
        ]
    );
    drop(deployed);
    assert!(!container_named(&app_a));
}

#[test]
fn a_site_naming_an_unknown_provider_creates_nothing() {
    let (work, env) = setup("8200-8299");
    let (label, _deployed) = Deployed::label("counter-bad", &env);
    let file = work.path().join("deploy.toml");
    std::fs::write(
        &file,
        format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\n[[site.provider]]\nname = \"db\"\n",
            fixture_app("pg-counter").display()
        ),
    )
    .unwrap();
    let out = env.nua(&["deploy", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "site `{label}` overrides provider `db`, which `pg-counter` does not have (it has: \
             database)"
        )),
        "{stderr}"
    );
    assert!(!container_named(&format!("nua-{label}-database")));
    assert!(!container_named(&format!("nua-{label}")));
}

#[test]
fn a_killed_deploy_converges_and_an_instance_rolls_back_and_is_kept_running() {
    let (work, env) = setup("8300-8399");
    let (label, _deployed) = Deployed::label("counter-k", &env);
    let app = fixture_app("pg-counter");
    let file = work.path().join("deploy.toml");
    let write = |extra: &str| {
        let text = format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\n{extra}",
            app.display()
        );
        std::fs::write(&file, text).unwrap();
    };
    write("");
    let file = file.to_str().unwrap();
    let (db, web) = (format!("nua-{label}-database"), format!("nua-{label}"));

    // Killed (SIGKILL) while its database starts: the same command again converges.
    let mut child = env.spawn(&["deploy", file, "-q"]);
    wait_until(300, "the database container", || container_named(&db));
    child.kill().unwrap();
    child.wait().unwrap();
    env.ok(&["deploy", file, "-q"]);
    let port = ports(&env)[0].1;
    assert_eq!(get(port, "/hit"), format!("{label} hits=1\n"));
    let history: Value = serde_json::from_str(&env.ok(&["history", &label, "--json"])).unwrap();
    let outcomes: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["outcome"].as_str().unwrap(),
                g["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{history}");
    assert_eq!(outcomes[0].0, "failed");
    assert!(outcomes[0].1.starts_with("interrupted"), "{history}");
    assert_eq!(outcomes[1], ("succeeded", ""));

    // An upgrade of its settings, then back: the data stays through both.
    write("env = { GREETING = \"v2\" }\n");
    env.ok(&["deploy", file, "-q"]);
    assert_eq!(get(port, "/"), format!("{label} hits=1 v2\n"));
    let out = env.ok(&["rollback", &label]);
    assert!(
        out.contains("back to generation 2 (as generation 4)"),
        "{out}"
    );
    assert_eq!(get(port, "/"), format!("{label} hits=1\n"));

    // An upgrade whose app never gets ready (it exits, Docker restarts it, it exits again)
    // fails with its last lines, and what ran before runs again, on its data.
    write("env = { DB_NAME = \"missing\" }\n");
    let out = env.nua(&["deploy", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the app of `{label}` is not ready"))
            && stderr.contains("and Docker restarted it")
            && stderr.contains("database \"missing\" does not exist")
            && stderr.contains(&format!("{label}: generation 4 runs again")),
        "{stderr}"
    );
    assert_eq!(get(port, "/"), format!("{label} hits=1\n"));
    let history: Value = serde_json::from_str(&env.ok(&["history", &label, "--json"])).unwrap();
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["number"].as_u64(), last["outcome"].as_str()),
        (Some(5), Some("failed")),
        "{last}"
    );

    // Everything removed by hand: `nua reconcile` makes it again, on its data.
    run_ok(Command::new("docker").args(["rm", "-f", &web, &db]));
    env.ok(&["reconcile", "-q"]);
    assert_eq!(get(port, "/"), format!("{label} hits=1\n"));

    // Stopped on purpose, it stays stopped through a reconcile, and runs again on start.
    env.ok(&["stop", &label]);
    assert!(http_get(port, "/").is_err());
    env.ok(&["reconcile", "-q"]);
    assert!(
        http_get(port, "/").is_err(),
        "reconcile started a stopped instance"
    );
    let ps = env.ok(&["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&label) && l.contains("exited")),
        "{ps}"
    );
    env.ok(&["start", &label]);
    assert_eq!(get(port, "/"), format!("{label} hits=1\n"));
    let out = env.nua(&["logs", &label, "--provider", "database", "-n", "50"]);
    let logs =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("ready to accept connections"), "{logs}");

    // `nua server` brings back what dies, until it is told to stop.
    let mut server = env.spawn(&["server", "--interval", "1"]);
    run_ok(Command::new("docker").args(["rm", "-f", &web]));
    wait_until(120, "the app answering again", || {
        http_get(port, "/").is_ok_and(|(_, body)| body == format!("{label} hits=1\n"))
    });
    // SAFETY: the pid is our child's.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());

    let unit = work.path().join("nua.service");
    env.ok(&["server", "install", "--output", unit.to_str().unwrap()]);
    let unit = std::fs::read_to_string(unit).unwrap();
    assert!(unit.contains("After=docker.service"), "{unit}");
    assert!(unit.contains(" server\n"), "{unit}");
}

/// A Docker image a test loads under a name it does not own, removed when dropped.
struct Tagged(String);

impl Drop for Tagged {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn a_provider_image_is_pulled_from_the_docker_hub_mirror_when_links_are_preferred() {
    use common::registry::{Auth, Registry};
    let (work, env) = setup("8400-8499");
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    // Nua's PostgreSQL image, served by a Docker Hub mirror as `library/postgres:15.1`, the
    // link the `postgres` module names for version 15.
    let tarball = work.path().join("postgres.tar");
    run_ok(
        nua_pack()
            .args(["base", "build", "postgres-15", "-q", "-o"])
            .arg(&tarball)
            .env("NUA_CACHE_DIR", &env.cache),
    );
    let mirrored = format!("{host}/library/postgres:15.1");
    run_ok(
        nua_pack()
            .args([
                "push",
                tarball.to_str().unwrap(),
                &mirrored,
                "--insecure-registry",
                &host,
            ])
            .env("NUA_CACHE_DIR", &env.cache),
    );
    let link = Tagged("docker.io/library/postgres:15.1".to_owned());
    let _ = Command::new("docker").args(["rmi", "-f", &link.0]).output();

    let (label, _deployed) = Deployed::label("counter-l", &env);
    let file = deploy_file(work.path(), std::slice::from_ref(&label));
    let mirror = format!("http://{host}");
    let vars = [
        ("NUA_REGISTRY_MIRROR", mirror.as_str()),
        ("NUA_PROVIDER_IMAGES", "links"),
    ];
    let out = env.nua_with(&["deploy", file.to_str().unwrap()], &vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("provider `database` runs {} (pulled)", link.0)),
        "{stderr}"
    );
    let status: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status[0]["providers"][0]["image"], link.0.as_str());
    let port = ports(&env)[0].1;
    assert_eq!(get(port, "/hit"), format!("{label} hits=1\n"));
    // The mirror was asked, by the registry client.
    assert!(registry
        .log()
        .contains("/v2/library/postgres/manifests/15.1"));

    // A site may name its app by a registry reference Docker lacks: it is pulled.
    let app_tarball = work.path().join("app.tar");
    run_ok(
        nua_pack()
            .args([
                "build",
                fixture_app("pg-counter").to_str().unwrap(),
                "-q",
                "-o",
            ])
            .arg(&app_tarball)
            .env("NUA_CACHE_DIR", &env.cache),
    );
    let reference = format!("{host}/apps/pg-counter:1.0");
    let _pushed = Tagged(reference.clone());
    run_ok(
        nua_pack()
            .args([
                "push",
                app_tarball.to_str().unwrap(),
                &reference,
                "--insecure-registry",
                &host,
            ])
            .env("NUA_CACHE_DIR", &env.cache),
    );
    let (second, _deployed_second) = Deployed::label("counter-ref", &env);
    let file = work.path().join("by-reference.toml");
    std::fs::write(
        &file,
        format!("[[site]]\nimage = \"{reference}\"\nlabel = \"{second}\"\n"),
    )
    .unwrap();
    let out = env.nua_with(
        &["deploy", file.to_str().unwrap()],
        &[("NUA_INSECURE_REGISTRIES", host.as_str())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("pulled {reference}")), "{stderr}");
    let port = ports(&env)
        .into_iter()
        .find(|(l, _)| *l == second)
        .unwrap()
        .1;
    assert_eq!(get(port, "/hit"), format!("{second} hits=1\n"));
}

#[test]
fn an_app_with_mariadb_and_redis_pauses_and_is_not_replaced_by_another_app_unasked() {
    let (work, env) = setup_with("8600-8699", &["mariadb-10.11", "redis-7"]);
    let (label, _deployed) = Deployed::label("mr", &env);
    let file = work.path().join("deploy.toml");
    let site = |app: &str| {
        format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\n",
            fixture_app(app).display()
        )
    };
    std::fs::write(&file, site("mr-counter")).unwrap();
    let file = file.to_str().unwrap();
    let out = env.nua(&["deploy", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Nua's own images stand for the modules' (MariaDB 10.11 meets `>=10.6`).
    for provider in ["database", "cache"] {
        assert!(
            stderr.contains(&format!("provider `{provider}` runs "))
                && stderr.contains("(built from Debian)"),
            "{stderr}"
        );
    }
    let port = ports(&env)[0].1;
    assert_eq!(get(port, "/hit"), format!("{label} hits=1 views=1\n"));
    assert_eq!(get(port, "/hit"), format!("{label} hits=2 views=2\n"));
    let status: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let providers: Vec<&str> = status[0]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["database", "cache"]);
    // Docker restarts what Nua deploys unless it is stopped on purpose.
    let policy = run_ok(Command::new("docker").args([
        "inspect",
        "-f",
        "{{.HostConfig.RestartPolicy.Name}}",
        &format!("nua-{label}-cache"),
    ]));
    assert_eq!(
        policy.trim(),
        "always",
        "the module's own `[docker]` option"
    );
    let policy = run_ok(Command::new("docker").args([
        "inspect",
        "-f",
        "{{.HostConfig.RestartPolicy.Name}}",
        &format!("nua-{label}"),
    ]));
    assert_eq!(policy.trim(), "unless-stopped");

    // Paused, it holds its port without answering; a reconcile leaves it paused.
    env.ok(&["pause", &label]);
    let status: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status[0]["state"], "paused");
    assert_eq!(status[0]["providers"][0]["state"], "paused");
    assert!(http_get(port, "/").is_err(), "a paused app answered");
    env.ok(&["reconcile", "-q"]);
    let status: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status[0]["state"], "paused");
    env.ok(&["unpause", &label]);
    assert_eq!(get(port, "/"), format!("{label} hits=2 views=2\n"));

    // Another app on the label is refused unless asked for, and nothing changes.
    let other = work.path().join("other.toml");
    std::fs::write(&other, site("unhealthy")).unwrap();
    let out = env.nua(&["deploy", other.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`{label}` runs `mr-counter`, not `unhealthy`: deploying it would replace that app \
             and its data; give `--replace` to do so"
        )),
        "{stderr}"
    );
    assert_eq!(get(port, "/"), format!("{label} hits=2 views=2\n"));
    let history: Value = serde_json::from_str(&env.ok(&["history", &label, "--json"])).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
}

#[test]
fn bad_input_is_one_error_each_and_creates_nothing() {
    let (work, env) = setup("8700-8799");
    let (label, _deployed) = Deployed::label("bad", &env);
    let deploy = |image: &str, vars: &[(&str, &str)]| {
        let file = work.path().join("deploy.toml");
        std::fs::write(
            &file,
            format!("[[site]]\nimage = \"{image}\"\nlabel = \"{label}\"\n"),
        )
        .unwrap();
        let out = env.nua_with(&["deploy", file.to_str().unwrap()], vars);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!container_named(&format!("nua-{label}")), "{stderr}");
        stderr
    };
    // An image nobody has.
    let stderr = deploy("127.0.0.1:9/nothing:1", &[]);
    assert!(stderr.contains("127.0.0.1:9/nothing:1"), "{stderr}");

    // An app whose provider needs an image nobody can give (no Docker Hub here, and Nua's
    // PostgreSQL is 15), and whose environment asks for the external IP.
    let app = work.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let config = |extra: &str| {
        std::fs::write(
            app.join("nua-config.toml"),
            format!(
                "[metadata]\nid = \"bad\"\nversion = \"1\"\n\n[run]\nstart = \"sleep 600\"\n\n\
                 {extra}"
            ),
        )
        .unwrap();
    };
    config(
        "[[provider]]\nname = \"database\"\nmodule-name = \"postgres\"\n\
         module-version = \">=14, <15\"\n",
    );
    let mirror = [("NUA_REGISTRY_MIRROR", "http://127.0.0.1:9")];
    let stderr = deploy(app.to_str().unwrap(), &mirror);
    assert!(
        stderr.contains(
            "provider `database` needs `docker.io/library/postgres:14.6`, which cannot be \
             pulled, and Nua has no image of its own for it (it has: postgres 15, mariadb \
             10.11, redis 7.0)"
        ),
        "{stderr}"
    );
    assert!(!container_named(&format!("nua-{label}-database")));

    config("[env]\nPUBLIC_IP = { external_ip = true }\n");
    let stderr = deploy(app.to_str().unwrap(), &[]);
    assert!(stderr.contains("NUA_EXTERNAL_IP"), "{stderr}");
    // The journal has the failed generation; no instance was made of it.
    let history: Value = serde_json::from_str(&env.ok(&["history", &label, "--json"])).unwrap();
    assert_eq!(history[0]["outcome"], "failed", "{history}");
    assert_eq!(env.ok(&["status", "--json"]).trim(), "[]");
}

#[test]
fn an_upgrade_behind_the_proxy_loses_no_request_even_when_the_new_version_fails() {
    let (work, mut env) = setup("8800-8899");
    let proxy_port = 7220;
    let _proxy = env.with_proxy(proxy_port, work.path().join("proxy"));
    let (label, _deployed) = Deployed::label("counter-z", &env);
    let file = work.path().join("deploy.toml");
    let host = format!("{label}.example.com");
    let write = |extra: &str| {
        let text = format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\ndomain = \"{host}\"\n{extra}",
            fixture_app("pg-counter").display()
        );
        std::fs::write(&file, text).unwrap();
    };
    write("");
    let file = file.to_str().unwrap();
    let drain = [("NUA_DRAIN_SECONDS", "1")];
    let out = env.nua_with(&["deploy", file], &drain);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        http_get_host(proxy_port, &host, "/hit").unwrap().1,
        format!("{label} hits=1\n")
    );
    let first_port = ports(&env)[0].1;

    // An upgrade under load: not one request fails.
    write("env = { GREETING = \"v2\" }\n");
    let load = Load::start(proxy_port, &host, "/health");
    let out = env.nua_with(&["deploy", file], &drain);
    std::thread::sleep(std::time::Duration::from_millis(500));
    load.finish_without_loss();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        http_get_host(proxy_port, &host, "/").unwrap().1,
        format!("{label} hits=1 v2\n")
    );
    // The new app runs on a port of its own; the old one is kept, stopped, for a rollback.
    assert_ne!(ports(&env)[0].1, first_port);
    let previous = run_ok(Command::new("docker").args([
        "inspect",
        "-f",
        "{{.State.Status}}",
        &format!("nua-{label}-previous"),
    ]));
    assert_eq!(previous.trim(), "exited");

    // A new version that never gets ready: the deploy fails with its last lines, and the
    // running one answered every request throughout, and still does.
    write("env = { GREETING = \"v2\", DB_NAME = \"missing\" }\n");
    let load = Load::start(proxy_port, &host, "/health");
    let out = env.nua_with(&["deploy", file], &drain);
    load.finish_without_loss();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("database \"missing\" does not exist"),
        "{stderr}"
    );
    assert_eq!(
        http_get_host(proxy_port, &host, "/").unwrap().1,
        format!("{label} hits=1 v2\n")
    );
    assert!(!container_named(&format!("nua-{label}-next")));

    // Going back is the same switch, under the same load.
    let load = Load::start(proxy_port, &host, "/health");
    let out = env.nua_with(&["rollback", &label], &drain);
    load.finish_without_loss();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        http_get_host(proxy_port, &host, "/").unwrap().1,
        format!("{label} hits=1\n")
    );
}

#[test]
fn domains_get_their_certificates_from_a_real_acme_ca_and_are_served_over_https() {
    use std::os::unix::fs::PermissionsExt;
    let (work, mut env) = setup("8900-8949");
    // nginx's workers (not root) read the challenge files of the proxy's tree.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (http, https) = (7230, 7231);
    let _proxy = env.with_proxy(http, work.path().join("proxy"));
    let pebble = common::acme::Pebble::start(&work.path().join("pebble"), 7240, http);
    let (label, _deployed) = Deployed::label("counter-tls", &env);
    let (second, _deployed_second) = Deployed::label("counter-tls2", &env);
    let host = format!("{label}.example.test");
    let host2 = format!("{second}.example.test");
    let file = work.path().join("deploy.toml");
    let site = |label: &str, host: &str| {
        format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\ndomain = \"{host}\"\n",
            fixture_app("pg-counter").display()
        )
    };
    std::fs::write(&file, site(&label, &host) + &site(&second, &host2)).unwrap();
    // A third site, on a name the CA refuses.
    let (refused, _deployed_refused) = Deployed::label("refused", &env);
    let refused_site = format!(
        "[[site]]\nimage = \"{}\"\nlabel = \"{refused}\"\ndomain = \"{}\"\n",
        fixture_app("static-site").display(),
        common::acme::REFUSED
    );
    // A CA that does not answer: the site is served over HTTP, the deploy says why there is
    // no certificate, and the attempt is recorded.
    let nowhere = [
        ("NUA_ACME", "on"),
        ("NUA_ACME_DIRECTORY", "https://127.0.0.1:9/dir"),
    ];
    let out = env.nua_with(&["deploy", file.to_str().unwrap()], &nowhere);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: no certificate for {host} yet, it is served over HTTP"
        )),
        "{stderr}"
    );
    assert_eq!(
        http_get_host(http, &host, "/").unwrap().1,
        format!("{label} hits=0\n")
    );
    let attempt =
        std::fs::read_to_string(env.state.join("certs").join(&host).join("attempt.json")).unwrap();
    assert!(attempt.contains("\"failures\": 1"), "{attempt}");
    let certs = |vars: &[(&str, &str)]| -> Value {
        let out = env.nua_with(&["certs", "--json"], vars);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let shown = certs(&nowhere);
    assert_eq!(shown[0]["domain"], host.as_str());
    assert_eq!(shown[0]["state"], "missing");
    assert!(
        shown[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9"),
        "{shown}"
    );

    let acme = [
        ("NUA_ACME", "on"),
        ("NUA_ACME_DIRECTORY", pebble.directory.as_str()),
        ("NUA_ACME_EMAIL", "ops@example.test"),
        ("NUA_ACME_CA_BUNDLE", pebble.tls_root.to_str().unwrap()),
    ];
    std::fs::write(
        &file,
        site(&label, &host) + &site(&second, &host2) + &refused_site,
    )
    .unwrap();
    let out = env.nua_with(&["deploy", file.to_str().unwrap()], &acme);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for host in [&host, &host2] {
        assert!(
            stderr.contains(&format!("certificate for {host} issued")),
            "{stderr}"
        );
    }
    // The CA refuses the third name: one warning with the CA's problem, the site is served
    // over HTTP, and the others have their certificates all the same.
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains(common::acme::REFUSED))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        warning.starts_with(&format!(
            "warning: no certificate for {} yet, it is served over HTTP: ",
            common::acme::REFUSED
        )) && warning.contains("rejectedIdentifier"),
        "{stderr}"
    );
    let (_, listing) = http_get_host(http, common::acme::REFUSED, "/").unwrap();
    assert!(
        listing.contains("Hello from a Nua static site"),
        "{listing}"
    );
    let shown = certs(&acme);
    let refused_cert = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["domain"] == common::acme::REFUSED)
        .unwrap_or_else(|| panic!("{shown}"));
    assert_eq!(refused_cert["state"], "missing", "{shown}");
    assert!(
        refused_cert["last_error"]
            .as_str()
            .unwrap()
            .contains("rejectedIdentifier"),
        "{shown}"
    );

    // HTTPS with the CA's certificate for the host; HTTP redirects to it.
    let root = pebble.issuing_root(&work.path().join("pebble-root.pem"));
    let curl = |scheme: &str, port: u16, extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&root)
            .arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
            .args(extra)
            .arg(format!("{scheme}://{host}:{port}/hit"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, body, err) = curl("https", https, &[]);
    assert!(ok, "{err}");
    assert_eq!(body, format!("{label} hits=1\n"));
    // The second domain has its own certificate (curl checks the name).
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&root)
        .arg("--resolve")
        .arg(format!("{host2}:{https}:127.0.0.1"))
        .arg(format!("https://{host2}:{https}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{second} hits=0\n")
    );
    let (_, headers, _) = curl("http", http, &["-o", "/dev/null", "-D", "-"]);
    assert!(headers.starts_with("HTTP/1.1 308"), "{headers}");
    assert!(
        headers.contains(&format!("Location: https://{host}:{https}/hit")),
        "{headers}"
    );
    let shown = certs(&acme);
    assert_eq!(shown[0]["state"], "valid", "{shown}");
    assert!(
        shown[0]["issuer"].as_str().unwrap().contains("Pebble"),
        "{shown}"
    );
    let first_expiry = shown[0]["not_after"].as_i64().unwrap();
    assert_eq!(shown[0]["last_error"], Value::Null);
    // The key is the server's alone.
    let key = env.state.join("certs").join(&host).join("key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // pebble's certificates here live 30 s: two thirds in, `nua server` renews it and nginx
    // reloads, while HTTPS requests keep coming without one failing.
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&root).unwrap()).unwrap(),
        )
        .resolve(&host, ([127, 0, 0, 1], https).into())
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://{host}:{https}/health");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut sent, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent += 1;
                match client.get(&url).send() {
                    Ok(r) if r.status() == 200 => {}
                    other => failed.push(format!("{other:?}")),
                }
            }
            (sent, failed)
        })
    };
    let mut server = env.spawn_with(&["server", "--interval", "1"], &acme);
    wait_until(60, "the certificate renewed", || {
        certs(&acme)[0]["not_after"].as_i64().unwrap() > first_expiry
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = load.join().unwrap();
    // SAFETY: the pid is our child's.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());
    assert!(sent > 10, "{sent}");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let shown = certs(&acme);
    assert_eq!(shown[0]["last_error"], Value::Null, "{shown}");
}

#[test]
fn a_single_writer_app_is_replaced_behind_503s_never_connection_errors() {
    let (work, mut env) = setup("9000-9099");
    let proxy_port = 7250;
    let _proxy = env.with_proxy(proxy_port, work.path().join("proxy"));
    let (label, _deployed) = Deployed::label("single", &env);
    let host = format!("{label}.example.com");
    let file = work.path().join("deploy.toml");
    let write = |greeting: &str| {
        let text = format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\ndomain = \"{host}\"\n\
             env = {{ GREETING = \"{greeting}\" }}\n",
            fixture_app("single-writer").display()
        );
        std::fs::write(&file, text).unwrap();
    };
    write("v1");
    let file = file.to_str().unwrap();
    env.ok(&["deploy", file, "-q"]);
    assert!(http_get_host(proxy_port, &host, "/")
        .unwrap()
        .0
        .contains(" 200 "));

    // Requests while it is replaced: each gets a 200, or a 503 that says when to come back.
    let load = MaintenanceLoad::start(proxy_port, &host);
    write("v2");
    let out = env.nua_with(&["deploy", file], &[("NUA_DRAIN_SECONDS", "1")]);
    load.finish_with_503s_only();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It never ran twice: the old container was removed, not kept beside the new one.
    assert!(!container_named(&format!("nua-{label}-previous")));
    assert!(http_get_host(proxy_port, &host, "/")
        .unwrap()
        .0
        .contains(" 200 "));
}
