//! Backups that fail, on the real engine with Debian's restic: a dump that fails, a
//! repository whose packs are damaged, a wrong password, a repository restic refuses, a full
//! file system, an instance that does not exist. Each is one clear error and exit code 1; a
//! backup that failed is recorded as `failed` and is never a restore's source; the instance
//! keeps running on its data throughout; no message shows the repository's password.

mod common;

use common::backup::*;
use common::deploy::*;
use serde_json::Value;

/// Rows of the `filler` table: some 20 MB, a dump of several restic chunks.
const FILLER_ROWS: u64 = 160_000;

/// Rows of the `filler` table of the full disk: some 75 MB, a dump of some 40, far more than
/// restic reads ahead before its first pack fails to be written, so the dump is still
/// streaming when restic ends.
const FULL_DISK_ROWS: u64 = 600_000;

/// Deploy the PostgreSQL counter as `label`, hit it once and add the `filler` table of
/// `rows` rows.
fn deploy_filled(work: &std::path::Path, env: &Env, label: &str, rows: u64) -> (Hits, String) {
    let hits = deploy_counter(work, env, label, 1);
    let database = format!("nua-{label}-database");
    fill(&database, rows);
    (hits, database)
}

#[track_caller]
fn assert_failed(ran: &Ran, what: &str) {
    assert_eq!(ran.code, Some(1), "{what}: {ran:#?}");
}

#[track_caller]
fn assert_no_password(ran: &Ran, passwords: &[&Password]) {
    for password in passwords {
        assert!(
            !ran.text().contains(&password.text),
            "a message shows the password:\n{}",
            ran.text()
        );
    }
}

#[test]
fn a_failing_dump_and_damaged_packs_are_failed_backups_that_nothing_restores() {
    let (work, env) = setup("9300-9349");
    let (label, _deployed) = Deployed::label("bf-dump", &env);
    let (mut hits, database) = deploy_filled(work.path(), &env, &label, FILLER_ROWS);
    let password = Password::new(work.path(), "bf-dump");
    let vars = [("NUA_BACKUP_PASSWORD_FILE", password.path())];
    let repository = env.state.join("backups");

    // pg_dump writes 16 MB, says why it fails, and exits 3 (what a shell's own failure would
    // never be, so the code shown is pg_dump's). Those bytes cannot all wait in pipes: restic
    // has opened and locked the repository and read most of them when the dump fails.
    let pg_dump = FailingPgDump::install(
        &database,
        16 << 20,
        "pg_dump: error: injected by bf-dump: could not read block 7",
        3,
    );
    let ran = nua_ran(&env, &["backup", &label], &vars);
    assert_failed(&ran, "a backup whose dump fails");
    assert!(
        ran.stderr.contains(&format!(
            "pg_dump in `{database}` failed with exit code 3: pg_dump: error: injected by \
             bf-dump: could not read block 7"
        )),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(&format!(
            "backup 1 of {label} failed; it does not count as a backup"
        )),
        "{}",
        ran.stderr
    );
    assert_no_password(&ran, &[&password]);
    let listed = backups(&env, &label);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let failed = &listed[0];
    assert_eq!(failed["id"], 1);
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(
        failed["error"],
        format!(
            "database: pg_dump in `{database}` failed with exit code 3: pg_dump: error: \
             injected by bf-dump: could not read block 7"
        )
    );
    let part = &failed["components"][0];
    assert_eq!(part["component"], "database");
    assert!(part.get("snapshot").is_none(), "{part:#}");
    assert!(part.get("verified").is_none(), "{part:#}");
    // restic never saw the end of the stream: it made no snapshot of the bytes it got.
    assert_eq!(
        snapshots(&repository, &password, "backup=1"),
        Vec::<Value>::new()
    );
    assert_eq!(
        snapshots(&repository, &password, "nua"),
        Vec::<Value>::new()
    );
    // Nor does it keep the repository locked: `restic check` (and `prune`, and `forget`)
    // take it whole. Asserted at the end, so that what follows is tested whatever this finds.
    let locks_after_failed_dump = locks(&repository);
    let check_after_failed_dump = restic(&repository, &password, &["check"]);
    // Nothing verified: nothing to restore, and nothing is touched.
    let ran = nua_ran(&env, &["restore", &label], &vars);
    assert_failed(&ran, "a restore with no verified backup");
    assert!(
        ran.stderr.contains(&format!(
            "error: `{label}` has no verified backup to restore\nhint: `nua backup {label}` \
             takes one"
        )),
        "{}",
        ran.stderr
    );
    assert_no_password(&ran, &[&password]);
    hits.hit();
    pg_dump.put_back();
    drop(pg_dump);

    // A verified backup, then every pack of the repository damaged: the next backup
    // deduplicates its unchanged chunks (the filler) into those packs, and reading it back
    // fails.
    let ran = nua_ran(&env, &["backup", &label, "--json"], &vars);
    assert_eq!(ran.code, Some(0), "{ran:#?}");
    let made: Value = serde_json::from_str(&ran.stdout).unwrap();
    let good = &made[0];
    assert_eq!(good["id"], 2);
    assert_eq!(good["status"], "verified", "{good:#}");
    assert_eq!(
        good["components"][0]["verified"],
        format!("2 tables, {} rows", FILLER_ROWS + hits.n)
    );
    assert!(damage_packs(&repository) > 0, "the repository has packs");
    hits.hit();
    let ran = nua_ran(&env, &["backup", &label], &vars);
    assert_failed(&ran, "a backup into damaged packs");
    // restic's own reason: a damaged blob fails its MAC.
    for part in [
        format!("error: backup 3 of {label}: database failed: verification failed: "),
        format!(
            "restic dump failed on the repository `{}`: cannot dump file: decrypting blob ",
            repository.display()
        ),
        "failed: ciphertext verification failed\n".to_owned(),
    ] {
        assert!(ran.stderr.contains(&part), "{part}\n{}", ran.stderr);
    }
    assert!(
        ran.stderr.contains(&format!(
            "backup 3 of {label} failed; it does not count as a backup"
        )),
        "{}",
        ran.stderr
    );
    assert_no_password(&ran, &[&password]);
    let listed = backups(&env, &label);
    assert_eq!(listed.len(), 3, "{listed:#?}");
    assert_eq!(listed[2]["status"], "failed", "{:#}", listed[2]);
    let error = listed[2]["error"].as_str().unwrap();
    assert!(
        error.starts_with("database: verification failed: "),
        "{error}"
    );
    assert!(error.ends_with("ciphertext verification failed"), "{error}");
    assert!(listed[2]["components"][0].get("verified").is_none());
    assert_eq!(scratch_left(&label), "", "no scratch container is left");

    // The verified backup's packs are damaged too: a restore of it fails before it stops
    // the app (its safety backup, of what is there now, cannot be verified either), and the
    // database is as it was.
    let ran = nua_ran(&env, &["restore", &label, "--backup", "2"], &vars);
    assert_failed(&ran, "a restore from damaged packs");
    for part in [
        format!("error: backup 4 of {label}: database failed: verification failed: "),
        "failed: ciphertext verification failed\n".to_owned(),
        format!(
            "error: the safety backup 4 of `{label}` failed, so nothing was restored (the \
             instance is as it was)\n"
        ),
    ] {
        assert!(ran.stderr.contains(&part), "{part}\n{}", ran.stderr);
    }
    assert!(!ran.stderr.contains("stopping the app"), "{}", ran.stderr);
    assert_no_password(&ran, &[&password]);
    let listed = backups(&env, &label);
    assert_eq!(listed.len(), 4, "{listed:#?}");
    assert_eq!(listed[3]["reason"], "safety");
    assert_eq!(listed[3]["status"], "failed");
    hits.hit();
    assert_eq!(
        psql(&database, "SELECT count(*) FROM filler"),
        FILLER_ROWS.to_string()
    );
    assert_eq!(scratch_left(&label), "", "no scratch container is left");

    assert!(
        locks_after_failed_dump.is_empty() && check_after_failed_dump.status.success(),
        "the restic killed when the dump failed left its lock {locks_after_failed_dump:?} in \
         `{}/locks`, and `restic check` refuses the repository until `restic unlock`:\n{}",
        repository.display(),
        String::from_utf8_lossy(&check_after_failed_dump.stderr)
    );
}

#[test]
fn a_wrong_password_a_refused_repository_and_a_full_disk_are_clear_errors() {
    let (work, env) = setup("9350-9399");
    let (label, _deployed) = Deployed::label("bf-disk", &env);
    let (mut hits, database) = deploy_filled(work.path(), &env, &label, FULL_DISK_ROWS);
    let right = Password::new(work.path(), "bf-right");
    let wrong = Password::new(work.path(), "bf-wrong");
    let repository = env.state.join("backups");
    let init = restic(&repository, &right, &["init"]);
    assert!(init.status.success(), "{init:?}");

    // The password of another repository.
    let ran = nua_ran(
        &env,
        &["backup", &label],
        &[("NUA_BACKUP_PASSWORD_FILE", wrong.path())],
    );
    assert_failed(&ran, "a wrong password");
    assert!(
        ran.stderr.contains(&format!(
            "on the repository `{}`: Fatal: wrong password or no key found",
            repository.display()
        )),
        "{}",
        ran.stderr
    );
    assert_no_password(&ran, &[&right, &wrong]);
    assert!(
        backups(&env, &label)
            .iter()
            .all(|b| b["status"] != "verified"),
        "nothing verified"
    );
    hits.hit();

    // A repository URL restic does not take.
    let ran = nua_ran(
        &env,
        &["backup", &label],
        &[
            ("NUA_BACKUP_REPOSITORY", "nope:x"),
            ("NUA_BACKUP_PASSWORD_FILE", right.path()),
        ],
    );
    assert_failed(&ran, "a repository restic refuses");
    assert!(
        ran.stderr.contains(
            "on the repository `nope:x`: Fatal: parsing repository location \
             failed: invalid backend"
        ),
        "{}",
        ran.stderr
    );
    assert_no_password(&ran, &[&right]);
    assert!(backups(&env, &label)
        .iter()
        .all(|b| b["status"] != "verified"));
    hits.hit();

    // A repository on a file system of 2 MB, for a dump of some 40: restic ends on the
    // first pack it cannot write, and says why.
    let full = Tmpfs::mount(&work.path().join("full"), "2m");
    let ran = nua_ran(
        &env,
        &["backup", &label],
        &[
            ("NUA_BACKUP_REPOSITORY", full.path()),
            ("NUA_BACKUP_PASSWORD_FILE", right.path()),
        ],
    );
    assert_failed(&ran, "a full repository");
    assert_no_password(&ran, &[&right]);
    let listed = backups(&env, &label);
    let last = listed.last().unwrap();
    assert_eq!(last["status"], "failed", "{last:#}");
    assert!(last["components"][0].get("verified").is_none(), "{last:#}");
    assert!(listed.iter().all(|b| b["status"] != "verified"));
    assert_eq!(snapshots(&full.0, &right, "nua"), Vec::<Value>::new());
    assert_eq!(scratch_left(&label), "", "no scratch container is left");
    hits.hit();
    assert_eq!(
        psql(&database, "SELECT count(*) FROM filler"),
        FULL_DISK_ROWS.to_string()
    );
    // Last, so that all of the above is tested whatever this finds: the error is restic's.
    let error = last["error"].as_str().unwrap();
    assert!(
        ran.stderr.contains(&format!(
            "error: backup 1 of {label}: database failed: restic backup failed on the \
             repository `{}`: Fatal: unable to save snapshot: write ",
            full.path()
        )),
        "{}",
        ran.stderr
    );
    assert!(error.ends_with(": no space left on device"), "{error}");
}

#[test]
fn backing_up_an_instance_that_does_not_exist_names_it() {
    let (_work, env) = setup_with("9300-9399", &[]);
    let label = format!("bf-none-{}", std::process::id());
    let ran = nua_ran(&env, &["backup", &label], &[]);
    assert_failed(&ran, "a backup of no instance");
    assert_eq!(
        ran.stderr,
        format!("error: there is no instance `{label}`\nhint: `nua status` lists them\n")
    );
    assert_eq!(ran.stdout, "");
    // Nothing was made for it: no repository, no backup.
    assert!(!env.state.join("backups").exists());
    assert_eq!(backups(&env, &label), Vec::<Value>::new());
    let ran = nua_ran(&env, &["restore", &label], &[]);
    assert_failed(&ran, "a restore of no instance");
    assert!(
        ran.stderr
            .starts_with(&format!("error: there is no instance `{label}`\n")),
        "{}",
        ran.stderr
    );
}
