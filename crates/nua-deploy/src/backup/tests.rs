use std::collections::BTreeMap;
use std::io::Write as _;

use super::verify::{self, SqlRows};
use super::*;
use crate::instance::Container;

fn container(component: &str, role: Role, module: Option<&str>) -> Container {
    Container {
        name: format!("nua-x-{component}"),
        component: component.to_owned(),
        role,
        image: format!("image-of-{component}"),
        env: BTreeMap::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        docker: BTreeMap::new(),
        ready_check: None,
        single_writer: false,
        proxy: None,
        module: module.map(str::to_owned),
        backup: None,
    }
}

fn volume(name: &str, kind: Option<nua_config::VolumeType>) -> nua_config::Volume {
    nua_config::Volume {
        name: Some(name.to_owned()),
        kind,
        target: "/data".to_owned(),
        driver: None,
        options: None,
        backup: None,
    }
}

fn method(name: &str) -> Option<nua_config::Backup> {
    Some(nua_config::Backup {
        method: name.to_owned(),
        frequency: None,
        options: None,
    })
}

/// An app with a PostgreSQL provider (its data volume), two managed volumes and a tmpfs.
fn desired() -> Desired {
    let mut database = container("database", Role::Provider, Some("postgres"));
    database.volumes = vec![volume("nua-x-pg-data", None)];
    let mut cache = container("cache", Role::Provider, Some("redis-cache"));
    cache.volumes = Vec::new();
    let mut app = container("app", Role::App, None);
    app.volumes = vec![
        volume("nua-x-uploads", Some(nua_config::VolumeType::Managed)),
        volume("nua-x-logs", None),
        volume("scratch", Some(nua_config::VolumeType::Tmpfs)),
    ];
    Desired {
        label: "x".to_owned(),
        domain: None,
        app_id: "app".to_owned(),
        network: "nua-x".to_owned(),
        containers: vec![database, cache, app],
        engine: Default::default(),
    }
}

fn names(components: &[Component]) -> Vec<(String, Kind)> {
    components
        .iter()
        .map(|c| (c.name.clone(), c.kind))
        .collect()
}

#[test]
fn with_nothing_declared_every_database_and_managed_volume_is_backed_up() {
    let planned = plan(&desired(), false).unwrap();
    assert_eq!(
        names(&planned),
        [
            ("database".to_owned(), Kind::Postgres),
            ("cache".to_owned(), Kind::Redis),
            ("nua-x-uploads".to_owned(), Kind::Volume),
            ("nua-x-logs".to_owned(), Kind::Volume),
        ]
    );
    // A database's own volume is its dump, never a tar; a volume is read with the image of
    // the container that mounts it.
    assert_eq!(planned[2].image, "image-of-app");
    assert_eq!(planned[2].volume.as_deref(), Some("nua-x-uploads"));
    assert_eq!(planned[0].container, "nua-x-database");
}

#[test]
fn declared_backups_choose_the_components_unless_all_is_asked() {
    let mut desired = desired();
    desired.containers[0].backup = method("pg_dump");
    desired.containers[2].volumes[1].backup = method("tar");
    assert_eq!(
        names(&plan(&desired, false).unwrap()),
        [
            ("database".to_owned(), Kind::Postgres),
            ("nua-x-logs".to_owned(), Kind::Volume),
        ]
    );
    assert_eq!(plan(&desired, true).unwrap().len(), 4);

    // `tgz_volumes` of the app names every volume of the app.
    let mut desired = self::desired();
    desired.containers[2].backup = method("tgz_volumes");
    assert_eq!(
        names(&plan(&desired, false).unwrap()),
        [
            ("nua-x-uploads".to_owned(), Kind::Volume),
            ("nua-x-logs".to_owned(), Kind::Volume),
        ]
    );
}

#[test]
fn a_method_nua_does_not_know_is_one_error_naming_it_and_those_it_knows() {
    let mut desired = desired();
    desired.containers[0].backup = method("pg_basebackup");
    let err = plan(&desired, false).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "provider `database` of `x` asks for the backup method `pg_basebackup`, which Nua \
             does not know (it knows: pg_dump, pg_dumpall, mysqldump"
        ),
        "{err}"
    );
    let mut bare = self::desired();
    bare.containers.retain(|c| c.role == Role::App);
    bare.containers[0].volumes.clear();
    assert_eq!(
        plan(&bare, true).unwrap_err().to_string(),
        "`x` has nothing to back up: no database provider and no managed volume"
    );
    let err = only("x", plan(&self::desired(), false).unwrap(), "db")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "`x` has no component `db` (it has: `database`, `cache`, `nua-x-uploads`, `nua-x-logs`)"
    );
}

#[test]
fn the_methods_of_the_original_map_to_kinds() {
    for (method, kind) in [
        ("pg_dump", Kind::Postgres),
        ("pg_dumpall", Kind::Postgres),
        ("mysqldump", Kind::Mariadb),
        ("mariadb-dump", Kind::Mariadb),
        ("mongodump", Kind::Mongo),
        ("tgz_volumes", Kind::Volume),
    ] {
        assert_eq!(Kind::of_method(method), Some(kind), "{method}");
    }
    for name in methods::METHODS {
        assert!(Kind::of_method(name).is_some(), "{name}");
    }
    assert_eq!(Kind::of_module("mariadb"), Some(Kind::Mariadb));
    assert_eq!(Kind::of_module("sqlite"), None);
}

#[test]
fn row_counts_are_read_from_a_mysqldump_stream_whatever_its_strings_hold() {
    let dump = "-- MariaDB dump 10.19\n\
        /*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n\
        DROP TABLE IF EXISTS `hits`;\n\
        CREATE TABLE `hits` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `note` text,\n  \
        PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n\
        INSERT INTO `hits` VALUES (1,'a (tricky) one'),(2,'it\\'s ); here'),(3,NULL);\n\
        INSERT INTO `hits` VALUES (4,'--not a comment\\n(5)');\n\
        INSERT INTO `hits` VALUES\n(5),\n(6);\n\
        CREATE TABLE `empty` (`id` int);\n\
        /* a comment with INSERT INTO `hits` VALUES (9); */\n\
        INSERT INTO `odd``name` VALUES (1);\n";
    let counts = SqlRows::new().read(dump.as_bytes()).unwrap();
    assert_eq!(counts.get("hits"), Some(&6), "{counts:?}");
    assert_eq!(counts.get("empty"), Some(&0), "{counts:?}");
    // Fed a byte at a time, the same.
    let mut rows = SqlRows::new();
    for b in dump.as_bytes() {
        rows.feed(std::slice::from_ref(b));
    }
    assert_eq!(rows.counts.get("hits"), Some(&6));
}

#[test]
fn a_tree_records_kinds_modes_owners_hashes_and_links_and_differences_are_named() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o750);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_size(0);
    builder
        .append_data(&mut header, "./docs/", std::io::empty())
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(5);
    builder
        .append_data(&mut header, "./docs/a.txt", &b"hello"[..])
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_link(&mut header, "./latest", "docs/a.txt")
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    let tree = verify::tree_of(&bytes[..]).unwrap();
    assert_eq!(tree.len(), 3);
    assert_eq!(tree["docs"].kind, "dir");
    assert_eq!((tree["docs"].mode, tree["docs"].uid), (0o750, 1000));
    assert_eq!(
        tree["docs/a.txt"].sha256.as_deref(),
        Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    );
    assert_eq!(tree["latest"].link.as_deref(), Some("docs/a.txt"));

    let mut changed = tree.clone();
    changed.get_mut("docs/a.txt").unwrap().mode = 0o644;
    changed.remove("latest");
    changed.insert("new".to_owned(), tree["docs/a.txt"].clone());
    let differences = verify::tree_differences(&tree, &changed, 10);
    assert_eq!(differences.len(), 3, "{differences:?}");
    assert!(differences[0].starts_with("`docs/a.txt` differs: dumped file 600"));
    assert_eq!(differences[1], "`latest` is missing");
    assert_eq!(differences[2], "`new` was not in the dump");
}

#[test]
fn a_tee_passes_every_byte_on_and_measures_them_all() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut tee = verify::Tee::new(Vec::new(), |mut reader| {
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut buf = vec![0; 8192];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
        }
        hex::encode(sha2::Digest::finalize(hasher))
    });
    for chunk in data.chunks(100_000) {
        tee.write_all(chunk).unwrap();
    }
    let (out, bytes, hash) = tee.finish();
    assert_eq!(out, data);
    assert_eq!(bytes, data.len() as u64);
    assert_eq!(
        hash,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data))
    );
}

#[test]
fn counts_and_their_differences() {
    let dumped = methods::parse_counts("[\"public.hits\", 3]\n[\"public.users\", 0]\n").unwrap();
    assert_eq!(dumped["public.hits"], 3);
    let restored = methods::parse_counts("[\"public.hits\", 2]\n").unwrap();
    assert_eq!(
        verify::count_differences(&dumped, &restored),
        [
            "table `public.hits` has 2 rows, the dump 3",
            "table `public.users` is missing"
        ]
    );
    assert!(methods::parse_counts("public.hits|3").is_err());
}

#[test]
fn no_script_takes_a_secret_as_an_argument() {
    // Passwords come from the container's environment inside the script; the argv Nua
    // gives is the script and paths only.
    for script in [
        methods::postgres_dump(),
        methods::postgres_restore(),
        methods::mariadb_dump(),
        methods::mariadb_restore(),
        methods::mongo_dump(),
        methods::redis_dump(),
    ] {
        assert!(!script.contains("--password"), "{script}");
        assert!(!script.contains("-p$"), "{script}");
    }
    assert!(methods::mariadb_dump().contains("export MYSQL_PWD"));
    assert!(methods::mariadb_dump().contains("--single-transaction --routines --events"));
    assert!(methods::postgres_dump().contains("pg_dump --format=custom"));
    assert!(methods::mongo_dump().contains("mongodump --quiet --archive"));
    assert!(methods::mongo_restore().contains("mongorestore --quiet --archive --drop"));
}

#[test]
fn frequencies_are_names_durations_or_cron_expressions() {
    use schedule::Frequency;
    assert_eq!(Frequency::parse("daily").unwrap(), Frequency::Every(86_400));
    assert_eq!(
        Frequency::parse("@hourly").unwrap(),
        Frequency::Every(3_600)
    );
    assert_eq!(Frequency::parse("24h").unwrap(), Frequency::Every(86_400));
    assert_eq!(Frequency::parse("1h30m").unwrap(), Frequency::Every(5_400));
    assert_eq!(Frequency::parse("2s").unwrap(), Frequency::Every(2));
    // 03:00 UTC every day: from 2026-12-06 14:00 UTC, the next is the 7th at 03:00.
    let cron = Frequency::parse("0 3 * * *").unwrap();
    assert_eq!(cron.next_after(1_796_565_600), 1_796_612_400);
    let err = Frequency::parse("sometimes").unwrap_err();
    assert!(
        err.starts_with("`sometimes` is not a frequency: give `hourly`"),
        "{err}"
    );
    assert!(Frequency::parse("0s").is_err());
}

#[test]
fn a_backup_is_due_once_its_time_has_passed_even_long_after() {
    use schedule::{due, Frequency};
    let hourly = [Frequency::Every(3_600)];
    assert!(due(&hourly, None, 1_000), "never backed up");
    assert!(!due(&hourly, Some(1_000), 4_599));
    assert!(due(&hourly, Some(1_000), 4_600));
    // The server was down for a week: the missed run is due at once.
    assert!(due(&hourly, Some(1_000), 1_000 + 7 * 86_400));
    assert!(!due(&[], None, 1_000), "no schedule, never due");
    // The earliest of several.
    let both = [Frequency::Every(86_400), Frequency::Every(60)];
    assert!(due(&both, Some(1_000), 1_060));
}

#[test]
fn retention_keeps_the_newest_of_each_period_as_restic_does() {
    use schedule::Keep;
    let day = 86_400;
    // Two backups a day for ten days (ids in time order), from a Monday (2026-11-30).
    let monday = 1_795_996_800;
    let backups: Vec<(u64, i64)> = (0..20)
        .map(|i| {
            (
                i as u64 + 1,
                monday + (i / 2) as i64 * day + (i % 2) as i64 * 3_600,
            )
        })
        .collect();
    let keep = Keep {
        last: 0,
        hourly: 0,
        daily: 3,
        weekly: 2,
        monthly: 0,
    };
    let kept: Vec<u64> = keep.kept(&backups).into_iter().collect();
    // The newest of the last three days (ids 20, 18, 16); of this week and last week the
    // newest is already kept (20) and the newest of the first week is id 14 (Sunday).
    assert_eq!(kept, [14, 16, 18, 20]);
    let last = Keep::parse("last=2").unwrap();
    assert_eq!(
        last.kept(&backups).into_iter().collect::<Vec<_>>(),
        [19, 20]
    );
    assert_eq!(Keep::default().daily, 7);
    assert!(Keep::parse("daily=x").is_err());
    assert!(Keep::parse("yearly=1").is_err());
    assert!(Keep::parse("daily=0").is_err());
}

#[test]
fn an_upload_whose_restic_prints_a_lot_before_reading_its_input_does_not_stall() {
    use std::os::unix::fs::PermissionsExt;
    // A stand-in for restic that prints far more than a pipe holds before it reads its
    // input, as restic's progress does during a long upload.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("restic");
    std::fs::write(
        &fake,
        "#!/bin/sh\nyes '{\"message_type\":\"status\"}' | head -n 20000\nwc -c >/dev/null\n\
         echo '{\"message_type\":\"summary\",\"snapshot_id\":\"abc\",\"data_added\":7}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let repository = restic::Repository {
        url: dir.path().join("repo").display().to_string(),
        password: "secret".into(),
        cache: dir.path().join("cache"),
        binary: fake,
        options: Vec::new(),
    };
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut upload = repository.upload("x.sql", &[]).unwrap();
        upload.input().write_all(&vec![b'x'; 4 << 20]).unwrap();
        let _ = done.send(upload.commit().map(|s| (s.snapshot_id, s.data_added)));
    });
    let summary = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the upload stalled");
    assert_eq!(summary.unwrap(), ("abc".to_owned(), 7));
}
