//! `nua backup`, `nua backups` and `nua restore` on the real engine, with Debian's restic:
//! an instance's databases (Nua's own PostgreSQL, MariaDB and Redis images, built from
//! Debian) and volumes are backed up, proven restorable, destroyed, and brought back.

mod common;

use std::process::Command;

use common::deploy::*;
use common::*;
use serde_json::Value;

/// The restic repository of a test's state, opened with `password`.
fn restic(env: &Env, password: &std::path::Path, args: &[&str]) -> String {
    let out = run_ok(
        Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", env.state.join("backups"))
            .env("RESTIC_PASSWORD_FILE", password)
            .env("RESTIC_CACHE_DIR", env.state.join("restic-cache")),
    );
    out
}

fn sql(container: &str, statement: &str) -> String {
    run_ok(Command::new("docker").args([
        "exec",
        container,
        "sh",
        "-c",
        &format!(
            "psql -X -q -A -t -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -v ON_ERROR_STOP=1 -c \
             \"{statement}\""
        ),
    ]))
}

#[test]
fn a_postgres_app_gets_its_rows_back_after_its_table_is_dropped() {
    let (work, env) = setup("9100-9199");
    let (label, _deployed) = Deployed::label("bk-pg", &env);
    let file = deploy_file(work.path(), std::slice::from_ref(&label));
    env.ok(&["deploy", file.to_str().unwrap()]);
    let port = ports(&env)[0].1;
    for n in 1..=3 {
        assert_eq!(get(port, "/hit"), format!("{label} hits={n}\n"));
    }
    // The repository's password, known to the test (by default Nua makes one and keeps it
    // encrypted in its state).
    let password = work.path().join("restic-password");
    std::fs::write(&password, "correct horse battery staple\n").unwrap();
    let vars = [("NUA_BACKUP_PASSWORD_FILE", password.to_str().unwrap())];

    let out = env.nua_with(&["backup", &label, "--json"], &vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &made[0];
    assert_eq!(first["status"], "verified", "{made}");
    assert_eq!(first["reason"], "manual");
    assert_eq!(first["generation"], 1);
    let part = &first["components"][0];
    assert_eq!(part["component"], "database");
    assert_eq!(part["kind"], "postgres");
    // Measured in the dump's snapshot, and found again in the scratch server.
    assert_eq!(part["verified"], "1 tables, 3 rows", "{made}");
    assert!(part["bytes"].as_u64().unwrap() > 500, "{made}");
    let snapshot = part["snapshot"].as_str().unwrap();

    // One snapshot, tagged with what it holds; its content is a pg_dump archive.
    let id = first["id"].as_u64().unwrap();
    let snapshots: Value = serde_json::from_str(&restic(
        &env,
        &password,
        &["snapshots", "--json", "--tag", &format!("backup={id}")],
    ))
    .unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1, "{snapshots}");
    let tags: Vec<&str> = snapshots[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tag in [
        "nua".to_owned(),
        format!("instance={label}"),
        "generation=1".to_owned(),
        "component=database".to_owned(),
        "kind=postgres".to_owned(),
    ] {
        assert!(tags.contains(&tag.as_str()), "{tags:?}");
    }
    assert!(snapshot.starts_with(snapshots[0]["short_id"].as_str().unwrap()));
    let dump = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "restic dump --no-lock {snapshot} /database.pgdump | head -c 5"
            ))
            .env("RESTIC_REPOSITORY", env.state.join("backups"))
            .env("RESTIC_PASSWORD_FILE", &password)
            .env("RESTIC_CACHE_DIR", env.state.join("restic-cache")),
    );
    assert_eq!(dump, "PGDMP", "pg_dump's custom format");
    // No scratch container is left.
    let left = run_ok(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        &format!("label=nua.scratch={label}"),
    ]));
    assert_eq!(left.trim(), "");

    // The table is dropped: the app fails. A restore brings the rows back, and the app
    // counts on from them.
    let database = format!("nua-{label}-database");
    sql(&database, "DROP TABLE hits");
    let (status, _) = common::docker::http_get(port, "/hit").unwrap();
    assert!(!status.contains("200"), "{status}");
    let out = env.nua_with(&["restore", &label], &vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{label}: restored from backup {id}")),
        "{stdout}"
    );
    assert_eq!(get(port, "/hit"), format!("{label} hits=4\n"));
    // What was there before (no table) is a backup of its own, verified.
    let listed: Value = serde_json::from_str(&env.ok(&["backups", &label, "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[1]["reason"], "safety");
    assert_eq!(listed[1]["status"], "verified");
    assert_eq!(listed[1]["components"][0]["verified"], "0 tables, 0 rows");
    // The database was swapped in whole: nothing of the restore's work is left.
    let databases = sql(&database, "SELECT datname FROM pg_database ORDER BY 1");
    assert!(!databases.contains("nua-restore"), "{databases}");
    assert!(!databases.contains("nua-before"), "{databases}");

    // The safety backup can itself be restored: back to no table.
    let safety = listed[1]["id"].as_u64().unwrap().to_string();
    let out = env.nua_with(&["restore", &label, "--backup", &safety], &vars);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (The app makes its table again when it starts.)
    assert_eq!(get(port, "/hit"), format!("{label} hits=1\n"));
    // And `nua backups` prints them for a person.
    let table = env.ok(&["backups", &label]);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(table.contains("database: 1 tables, 3 rows"), "{table}");

    // An upgrade whose migration loses the rows: the data it replaced was backed up first,
    // and a rollback with data brings the old app back on it.
    get(port, "/hit");
    assert_eq!(get(port, "/"), format!("{label} hits=2\n"));
    let site = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{site}[site.env]\nMIGRATE = \"lose-rows\"\n"),
    )
    .unwrap();
    let out = env.nua_with(&["deploy", file.to_str().unwrap()], &vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{label}: backup 4 holds the data of generation 1, verified"
        )),
        "{stderr}"
    );
    let port = ports(&env)[0].1;
    assert_eq!(
        get(port, "/"),
        format!("{label} hits=0\n"),
        "the migration lost them"
    );
    get(port, "/hit");
    let out = env.nua_with(&["rollback", &label, "--with-data"], &vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{label}: the data of generation 1 is back (backup 4)"
        )),
        "{stderr}"
    );
    let port = ports(&env)[0].1;
    assert_eq!(get(port, "/"), format!("{label} hits=2\n"));
    let history: Value = serde_json::from_str(&env.ok(&["history", &label, "--json"])).unwrap();
    assert_eq!(history[2]["kind"], "rollback", "{history}");
    assert_eq!(history[2]["outcome"], "succeeded", "{history}");
    // Today's data (one row, after the migration) was kept first.
    let listed: Value = serde_json::from_str(&env.ok(&["backups", &label, "--json"])).unwrap();
    let safety = listed.as_array().unwrap().last().unwrap().clone();
    assert_eq!(safety["reason"], "safety", "{listed}");
    assert_eq!(
        safety["components"][0]["verified"], "1 tables, 1 rows",
        "{listed}"
    );

    // `nua server` backs up on schedule and keeps the two newest (and the one taken before
    // the upgrade, which a rollback with data needs).
    let schedule = [
        vars[0],
        ("NUA_BACKUP_FREQUENCY", "2s"),
        ("NUA_BACKUP_KEEP", "last=2"),
        ("NUA_BACKUP_CHECK", "1h"),
    ];
    let server = env.spawn_piped(&["server", "--interval", "1"], &schedule);
    let scheduled = || -> Vec<u64> {
        let listed: Value = serde_json::from_str(&env.ok(&["backups", &label, "--json"])).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["reason"] == "schedule" && b["status"] == "verified")
            .map(|b| b["id"].as_u64().unwrap())
            .collect()
    };
    wait_until(120, "four scheduled backups", || {
        scheduled().last().is_some_and(|id| *id >= 9)
    });
    // SAFETY: the pid is our child's.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let said = server.wait_with_output().unwrap();
    assert!(said.status.success());
    // The repository was checked once (the check is due hourly here).
    let said = String::from_utf8_lossy(&said.stderr);
    assert_eq!(
        said.matches("nua server: the backup repository checks out")
            .count(),
        1,
        "{said}"
    );
    let listed: Value = serde_json::from_str(&env.ok(&["backups", &label, "--json"])).unwrap();
    let kept: Vec<(u64, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_u64().unwrap(), b["reason"].as_str().unwrap()))
        .collect();
    let newest = *scheduled().last().unwrap();
    assert_eq!(
        kept,
        [
            (4, "upgrade"),
            (newest - 1, "schedule"),
            (newest, "schedule")
        ],
        "{listed}"
    );
    // The repository holds the snapshots of those three only.
    let snapshots: Value =
        serde_json::from_str(&restic(&env, &password, &["snapshots", "--json"])).unwrap();
    let mut in_repository: Vec<u64> = snapshots
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tags"].as_array().unwrap().iter())
        .filter_map(|t| t.as_str().unwrap().strip_prefix("backup=")?.parse().ok())
        .collect();
    in_repository.sort();
    assert_eq!(in_repository, [4, newest - 1, newest]);
}

#[test]
fn mariadb_redis_and_a_volume_with_modes_owners_and_a_symlink_come_back() {
    let (work, mut env) = setup_with("9200-9299", &["mariadb-10.11", "redis-7"]);
    // Behind Nua's nginx: while the data is restored, it answers 503 with `Retry-After`.
    let proxy_port = 7262;
    let _proxy = env.with_proxy(proxy_port, work.path().join("proxy"));
    let (label, _deployed) = Deployed::label("bk-mr", &env);
    let host = format!("{label}.example.test");
    let file = work.path().join("deploy.toml");
    std::fs::write(
        &file,
        format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\ndomain = \"{host}\"\n\n\
             [[site.volume]]\nname = \"files\"\ntarget = \"/data\"\n",
            fixture_app("mr-counter").display()
        ),
    )
    .unwrap();
    env.ok(&["deploy", file.to_str().unwrap()]);
    let port = ports(&env)[0].1;
    assert_eq!(get(port, "/hit"), format!("{label} hits=1 views=1\n"));
    assert_eq!(get(port, "/hit"), format!("{label} hits=2 views=2\n"));
    let app = format!("nua-{label}");
    let files = "set -e; mkdir -p /data/docs/deep; printf hello >/data/docs/a.txt; \
                 chmod 640 /data/docs/a.txt; chown 1000:1000 /data/docs; \
                 chown 123:456 /data/docs/a.txt; chmod 1777 /data/docs/deep; \
                 ln -s docs/a.txt /data/latest; head -c 300000 /dev/urandom >/data/blob";
    run_ok(Command::new("docker").args(["exec", "-u", "root", &app, "sh", "-c", files]));
    let listing = "cd /data && find . -printf '%p %y %m %U:%G %s %l\\n' | sort && sha256sum blob";
    let before = run_ok(Command::new("docker").args(["exec", &app, "sh", "-c", listing]));

    let out = env.nua(&["backup", &label, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let parts = made[0]["components"].as_array().unwrap();
    let verified: Vec<(&str, &str)> = parts
        .iter()
        .map(|p| {
            (
                p["component"].as_str().unwrap(),
                p["verified"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verified,
        [
            ("database", "1 tables, 2 rows"),
            ("cache", "1 keys"),
            (
                format!("nua-{label}-files").as_str(),
                "2 files, 2 folders, 1 symlinks, 300005 bytes"
            )
        ],
        "{made}"
    );

    // Everything is destroyed, then restored.
    run_ok(Command::new("docker").args([
        "exec",
        &format!("nua-{label}-database"),
        "sh",
        "-c",
        "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb -uroot \"$MARIADB_DATABASE\" -e 'DELETE FROM hits'",
    ]));
    run_ok(Command::new("docker").args([
        "exec",
        &format!("nua-{label}-cache"),
        "redis-cli",
        "FLUSHALL",
    ]));
    run_ok(Command::new("docker").args([
        "exec",
        "-u",
        "root",
        &app,
        "sh",
        "-c",
        "rm -rf /data/* && echo junk >/data/junk",
    ]));
    let load = MaintenanceLoad::start(proxy_port, &host);
    let out = env.nua(&["restore", &label]);
    let (ok, unavailable, failed) = load.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        failed.is_empty(),
        "{} failed ({ok} ok, {unavailable} 503): {:?}\n{stderr}",
        failed.len(),
        &failed[..failed.len().min(1)]
    );
    assert!(
        unavailable > 0,
        "no 503 while it was restored ({ok} answered)"
    );
    for component in ["database", "cache", &format!("nua-{label}-files")] {
        assert!(
            stderr.contains(&format!("restored {component} of {label} from backup 1")),
            "{stderr}"
        );
    }
    let after = run_ok(Command::new("docker").args(["exec", &app, "sh", "-c", listing]));
    assert_eq!(after, before);
    assert_eq!(get(port, "/hit"), format!("{label} hits=3 views=3\n"));

    // Only one component, from the safety backup: the volume as it was before the restore.
    let out = env.nua(&[
        "restore",
        &label,
        "--backup",
        "2",
        "--component",
        &format!("nua-{label}-files"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = run_ok(Command::new("docker").args(["exec", &app, "ls", "/data"]));
    assert_eq!(listed.trim(), "junk");
    assert_eq!(get(port, "/hit"), format!("{label} hits=4 views=4\n"));
}
