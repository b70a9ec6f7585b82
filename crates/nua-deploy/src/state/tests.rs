use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::*;

fn open(dir: &Path) -> State {
    State::open(dir).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_state_folder_is_private_and_in_wal_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let state = open(&dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    assert_eq!(std::fs::metadata(dir.join(KEY_FILE)).unwrap().len(), 32);
    let journal: String = state
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let version: u32 = state
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::VERSION);
}

#[test]
fn a_success_moves_the_instance_and_a_failure_keeps_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = open(tmp.path());
    let first = json!({"image": "notes:1"});
    let n1 = state
        .begin("notes", Kind::Deploy, "ann@host", &first)
        .unwrap();
    assert_eq!(
        state.instance("notes").unwrap(),
        None,
        "pending is not current"
    );
    state.finish("notes", n1, Ok(())).unwrap();
    let n2 = state
        .begin(
            "notes",
            Kind::Upgrade,
            "ann@host",
            &json!({"image": "notes:2"}),
        )
        .unwrap();
    state.finish("notes", n2, Err("unhealthy: exit 3")).unwrap();
    let current = state.instance("notes").unwrap().unwrap();
    assert_eq!((current.generation, &current.desired), (1, &first));

    let history = state.history(Some("notes")).unwrap();
    let said: Vec<(u64, Kind, Outcome)> = history
        .iter()
        .map(|g| (g.number, g.kind, g.outcome.clone()))
        .collect();
    assert_eq!(
        said,
        [
            (1, Kind::Deploy, Outcome::Succeeded),
            (
                2,
                Kind::Upgrade,
                Outcome::Failed("unhealthy: exit 3".into())
            ),
        ]
    );
    assert_eq!(history[1].actor, "ann@host");
    assert!(history[1].finished.is_some());
    assert_eq!(history[1].desired["image"], "notes:2");

    // A generation begun and never finished (the process was killed) stays pending.
    let n3 = state
        .begin(
            "notes",
            Kind::Upgrade,
            "ann@host",
            &json!({"image": "notes:3"}),
        )
        .unwrap();
    drop(state);
    let mut state = open(tmp.path());
    let last = state.history(Some("notes")).unwrap().pop().unwrap();
    assert_eq!((last.number, last.outcome), (n3, Outcome::Pending));
    assert_eq!(state.instance("notes").unwrap().unwrap().generation, 1);

    // A removal that succeeds removes the instance; its journal stays. Beginning it
    // closes the generation the killed process left pending.
    let n4 = state
        .begin("notes", Kind::Remove, "ann@host", &first)
        .unwrap();
    let interrupted = &state.history(Some("notes")).unwrap()[2];
    assert_eq!(interrupted.number, n3);
    assert!(
        matches!(&interrupted.outcome, Outcome::Failed(e) if e.starts_with("interrupted")),
        "{interrupted:?}"
    );
    state.finish("notes", n4, Ok(())).unwrap();
    assert_eq!(state.instance("notes").unwrap(), None);
    assert_eq!(state.history(None).unwrap().len(), 4);
    assert!(matches!(
        state.finish("notes", 9, Ok(())),
        Err(Error::NoGeneration { generation: 9, .. })
    ));
}

/// Every byte of the state files, to look for a secret in them.
fn files_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != KEY_FILE)
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_are_kept_encrypted_and_a_copy_of_the_database_alone_reveals_none() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = open(tmp.path());
    let password = "Zq8vN3pLkT6wRx1sYb4cMd7e";
    let kept = state
        .secret_or_insert("notes", "POSTGRES_PASSWORD", || password.to_owned())
        .unwrap();
    assert_eq!(kept, password);
    // Kept: the generator is not asked again.
    let again = state
        .secret_or_insert("notes", "POSTGRES_PASSWORD", || unreachable!())
        .unwrap();
    assert_eq!(again, password);
    drop(state);
    let state = open(tmp.path());
    assert_eq!(
        state
            .secret("notes", "POSTGRES_PASSWORD")
            .unwrap()
            .as_deref(),
        Some(password)
    );
    for (path, bytes) in files_bytes(tmp.path()) {
        assert!(
            !contains(&bytes, password.as_bytes()),
            "`{}` holds the secret in clear",
            path.display()
        );
    }
    drop(state);

    // The database copied without its key: nothing opens, and the error names the key.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(tmp.path().join(DATABASE), copy.path().join(DATABASE)).unwrap();
    let stranger = open(copy.path());
    let err = stranger.secret("notes", "POSTGRES_PASSWORD").unwrap_err();
    assert!(matches!(err, Error::Decrypt { .. }), "{err}");
    assert!(err.to_string().contains(KEY_FILE), "{err}");
}

#[test]
fn a_sealed_value_moved_to_another_secret_does_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = open(tmp.path());
    state
        .secret_or_insert("a", "PASSWORD", || "one".into())
        .unwrap();
    state
        .secret_or_insert("b", "PASSWORD", || "two".into())
        .unwrap();
    state
        .conn
        .execute(
            "UPDATE secrets SET nonce = (SELECT nonce FROM secrets WHERE label = 'a'),
             sealed = (SELECT sealed FROM secrets WHERE label = 'a') WHERE label = 'b'",
            [],
        )
        .unwrap();
    assert!(matches!(
        state.secret("b", "PASSWORD"),
        Err(Error::Decrypt { .. })
    ));
    assert_eq!(state.forget_secrets("a").unwrap(), 1);
    assert_eq!(state.secret("a", "PASSWORD").unwrap(), None);
}

#[test]
fn a_key_others_can_read_or_of_the_wrong_size_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    let key = tmp.path().join(KEY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = State::open(tmp.path()).err().unwrap();
    assert!(err.to_string().contains("read by others"), "{err}");
    std::fs::write(&key, b"short").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = State::open(tmp.path()).err().unwrap();
    assert!(err.to_string().contains("has 5 bytes"), "{err}");
    assert!(err.hint().is_some());
}

#[test]
fn counters_count_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = open(tmp.path());
    assert_eq!(state.next_counter("unique_user").unwrap(), 1);
    assert_eq!(state.next_counter("unique_user").unwrap(), 2);
    assert_eq!(state.next_counter("unique_db").unwrap(), 1);
    drop(state);
    let mut state = open(tmp.path());
    assert_eq!(state.next_counter("unique_user").unwrap(), 3);
}

#[test]
fn a_database_from_a_newer_nua_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = open(tmp.path());
    state
        .conn
        .pragma_update(None, "user_version", schema::VERSION + 1)
        .unwrap();
    drop(state);
    let err = State::open(tmp.path()).err().unwrap();
    assert!(matches!(err, Error::Newer { .. }), "{err}");
}

#[test]
fn two_processes_share_one_key_and_one_value() {
    // Two handles opened at once stand for two `nua` processes.
    let tmp = tempfile::tempdir().unwrap();
    let mut one = open(tmp.path());
    let mut two = open(tmp.path());
    let first = one
        .secret_or_insert("x", "S", || "from-one".into())
        .unwrap();
    let second = two
        .secret_or_insert("x", "S", || "from-two".into())
        .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("from-one", "from-one"));
    let a = one.begin("x", Kind::Deploy, "a", &json!({})).unwrap();
    let b = two.begin("x", Kind::Deploy, "b", &json!({})).unwrap();
    assert_eq!((a, b), (1, 2));
}

#[test]
fn a_database_of_the_first_schema_is_migrated_with_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(tmp.path().join(DATABASE)).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO generations VALUES ('old', 1, 'deploy', 'a', 0, 1, 'succeeded', NULL, '{}');
             INSERT INTO instances VALUES ('old', 1, '{}');",
        )
        .unwrap();
    }
    let mut state = open(tmp.path());
    let old = state.instance("old").unwrap().unwrap();
    assert_eq!((old.generation, old.stopped), (1, false));
    assert!(state.set_stopped("old", true).unwrap());
    assert!(state.instance("old").unwrap().unwrap().stopped);
    assert!(!state.set_stopped("nobody", true).unwrap());
    // A deploy runs it again.
    let n = state.begin("old", Kind::Upgrade, "a", &json!({})).unwrap();
    state.finish("old", n, Ok(())).unwrap();
    assert!(!state.instance("old").unwrap().unwrap().stopped);
}
