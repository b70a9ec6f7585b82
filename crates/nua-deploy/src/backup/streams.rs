//! Each kind of component's dump, its verification in a scratch container, and its
//! restore into the instance.

use std::collections::BTreeMap;
use std::io::Write;

use nua_runtime::Mount;

use super::containers::{exec, nonce, tail, Consumer, Measured};
use super::{methods, restic, verify, Backups, Component, Kind};

impl Backups<'_> {
    /// Stream `component`'s dump into an upload to the repository.
    pub(super) fn dump(
        &self,
        label: &str,
        component: &Component,
        upload: &mut restic::Upload<'_>,
    ) -> Result<(u64, Measured), String> {
        let input = upload.input();
        match component.kind {
            Kind::Postgres => {
                let work = format!("/tmp/nua-backup-{}", nonce());
                let argv = methods::sh(&methods::postgres_dump(), &[&work]);
                let mut tee = verify::Tee::new(input, |mut r| {
                    std::io::copy(&mut r, &mut std::io::sink()).map(|_| ())
                });
                let status =
                    self.engine
                        .exec_stream(&component.container, &exec(argv), None, &mut tee);
                let (_, bytes, _) = tee.finish();
                let counts = self.run_script(
                    &component.container,
                    methods::sh(&methods::read_and_clear(), &[&work]),
                    None,
                );
                let status = status.map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "pg_dump in `{}` failed with exit code {}: {}",
                        component.container,
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                let counts = methods::parse_counts(&String::from_utf8_lossy(&counts?))?;
                Ok((bytes, Measured::Counts(counts)))
            }
            Kind::Mariadb => {
                let argv = methods::sh(&methods::mariadb_dump(), &[]);
                let mut tee = verify::Tee::new(input, |r| verify::SqlRows::new().read(r));
                let status =
                    self.engine
                        .exec_stream(&component.container, &exec(argv), None, &mut tee);
                let (_, bytes, counts) = tee.finish();
                let status = status.map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "mariadb-dump in `{}` failed with exit code {}: {}",
                        component.container,
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                let counts = counts.map_err(|e| format!("the dump could not be read: {e}"))?;
                Ok((bytes, Measured::Counts(counts)))
            }
            Kind::Redis | Kind::Mongo => {
                let script = if component.kind == Kind::Redis {
                    methods::redis_dump()
                } else {
                    methods::mongo_dump()
                };
                let mut counter = Counter {
                    inner: input,
                    bytes: 0,
                };
                let status = self
                    .engine
                    .exec_stream(
                        &component.container,
                        &exec(methods::sh(&script, &[])),
                        None,
                        &mut counter,
                    )
                    .map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "the dump in `{}` failed with exit code {}: {}",
                        component.container,
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                Ok((counter.bytes, Measured::Later))
            }
            Kind::Volume => {
                let volume = component.volume.clone().unwrap_or_default();
                let helper = self
                    .helper(
                        label,
                        &component.image,
                        vec![Mount::Volume {
                            name: volume.clone(),
                            target: "/volume".to_owned(),
                            read_only: true,
                        }],
                    )
                    .map_err(|e| e.to_string())?;
                let argv = methods::sh(&methods::volume_dump(), &["/volume"]);
                let mut tee = verify::Tee::new(input, verify::tree_of);
                let status = self
                    .engine
                    .exec_stream(&helper.name, &exec(argv), None, &mut tee);
                let (_, bytes, tree) = tee.finish();
                let status = status.map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "tar of the volume `{volume}` failed with exit code {}: {}",
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                let tree = tree.map_err(|e| format!("the tar stream could not be read: {e}"))?;
                Ok((bytes, Measured::Tree(tree)))
            }
        }
    }

    /// Read `snapshot` back into a scratch container of the component's image and compare
    /// it with what was measured; a summary of what matched.
    pub(super) fn verify(
        &self,
        label: &str,
        component: &Component,
        snapshot: &str,
        measured: &Measured,
        bytes: u64,
    ) -> Result<String, String> {
        let file = filename(component);
        // Feed the stored dump to `consume` (restic reads it back from the repository).
        let download = |consume: &mut Consumer<'_>| -> Result<Vec<u8>, String> {
            let mut result = Err("restic gave nothing".to_owned());
            self.repository
                .download(snapshot, &file, &mut |reader| {
                    result = consume(reader);
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            result
        };
        match (component.kind, measured) {
            (Kind::Postgres, Measured::Counts(dumped)) => {
                let names = self.env_of(&component.container, &["POSTGRES_USER", "POSTGRES_DB"])?;
                let env = vec![
                    format!("POSTGRES_USER={}", names[0]),
                    format!("POSTGRES_DB={}", names[1]),
                    format!("POSTGRES_PASSWORD={}", nonce()),
                ];
                let scratch = self
                    .scratch(label, "verify", &component.image, env, None, Vec::new())
                    .map_err(|e| e.to_string())?;
                self.wait_for(
                    &scratch.name,
                    &["pg_isready", "-q", "-h", "127.0.0.1"],
                    "PostgreSQL",
                )?;
                download(&mut |reader| {
                    self.run_script(
                        &scratch.name,
                        methods::sh(&methods::postgres_load_scratch(), &[]),
                        Some((reader, bytes)),
                    )
                    .map_err(|e| format!("pg_restore into a scratch server failed: {e}"))
                })?;
                let restored = self.run_script(
                    &scratch.name,
                    methods::sh(&methods::postgres_counts(), &[]),
                    None,
                )?;
                compare_counts(dumped, &String::from_utf8_lossy(&restored))
            }
            (Kind::Mariadb, Measured::Counts(dumped)) => {
                let names = self.env_of(
                    &component.container,
                    &["MARIADB_DATABASE", "MYSQL_DATABASE"],
                )?;
                let database = if names[0].is_empty() {
                    &names[1]
                } else {
                    &names[0]
                };
                let env = vec![
                    format!("MARIADB_DATABASE={database}"),
                    format!("MARIADB_ROOT_PASSWORD={}", nonce()),
                ];
                let scratch = self
                    .scratch(label, "verify", &component.image, env, None, Vec::new())
                    .map_err(|e| e.to_string())?;
                self.wait_for(
                    &scratch.name,
                    &methods::sh(
                        "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb-admin --user=root ping --silent -h 127.0.0.1",
                        &[],
                    )
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                    "MariaDB",
                )?;
                download(&mut |reader| {
                    self.run_script(
                        &scratch.name,
                        methods::sh(&methods::mariadb_restore(), &[]),
                        Some((reader, bytes)),
                    )
                    .map_err(|e| format!("loading the dump into a scratch server failed: {e}"))
                })?;
                let restored = self.run_script(
                    &scratch.name,
                    methods::sh(&methods::mariadb_counts(), &[]),
                    None,
                )?;
                compare_counts(dumped, &String::from_utf8_lossy(&restored))
            }
            (Kind::Redis, _) => {
                let helper = self
                    .helper(label, &component.image, Vec::new())
                    .map_err(|e| e.to_string())?;
                // The keys the file holds, then the keys a server loading it has.
                let script = "set -eu\nmkdir -p /tmp/nua-verify\ncat >/tmp/nua-verify/dump.rdb\n\
                              redis-check-rdb /tmp/nua-verify/dump.rdb | tr -d '\\r' | \
                              sed -n 's/.*\\[info\\] \\([0-9]*\\) keys read.*/\\1/p' | tail -n 1";
                let keys = download(&mut |reader| {
                    self.run_script(
                        &helper.name,
                        methods::sh(script, &[]),
                        Some((reader, bytes)),
                    )
                })?;
                let keys = String::from_utf8_lossy(&keys).trim().to_owned();
                let start = "set -eu\nredis-server --port 6390 --bind 127.0.0.1 --dir /tmp/nua-verify \
                             --dbfilename dump.rdb --daemonize yes --save '' --appendonly no >/dev/null";
                self.run_script(&helper.name, methods::sh(start, &[]), None)?;
                self.wait_for(&helper.name, &["redis-cli", "-p", "6390", "ping"], "Redis")?;
                let count = "redis-cli -p 6390 INFO keyspace | tr -d '\\r' | \
                             sed -n 's/^db[0-9]*:keys=\\([0-9]*\\).*/\\1/p' | \
                             awk '{ n += $1 } END { print n + 0 }'";
                let loaded = self.run_script(&helper.name, methods::sh(count, &[]), None)?;
                let loaded = String::from_utf8_lossy(&loaded).trim().to_owned();
                if keys.is_empty() || keys != loaded {
                    return Err(format!(
                        "the RDB file holds {} keys, a server loading it has {loaded}",
                        if keys.is_empty() {
                            "an unknown number of"
                        } else {
                            &keys
                        }
                    ));
                }
                Ok(format!("{keys} keys"))
            }
            (Kind::Mongo, _) => {
                let scratch = self
                    .scratch(
                        label,
                        "verify",
                        &component.image,
                        Vec::new(),
                        None,
                        Vec::new(),
                    )
                    .map_err(|e| e.to_string())?;
                self.wait_for(
                    &scratch.name,
                    &["mongosh", "--quiet", "--eval", "db.runCommand({ ping: 1 })"],
                    "MongoDB",
                )?;
                download(&mut |reader| {
                    self.run_script(
                        &scratch.name,
                        methods::sh(&methods::mongo_restore(), &[]),
                        Some((reader, bytes)),
                    )
                })?;
                Ok("restored without error (collections not compared)".to_owned())
            }
            (Kind::Volume, Measured::Tree(dumped)) => {
                let helper = self
                    .helper(label, &component.image, Vec::new())
                    .map_err(|e| e.to_string())?;
                download(&mut |reader| {
                    self.run_script(
                        &helper.name,
                        methods::sh(
                            &format!("mkdir -p /tmp/nua-verify\n{}", methods::volume_restore()),
                            &["/tmp/nua-verify"],
                        ),
                        Some((reader, bytes)),
                    )
                    .map_err(|e| format!("unpacking into a scratch folder failed: {e}"))
                })?;
                // Measured as it streams, as the dump was: never held whole.
                let mut tee = verify::Tee::new(std::io::sink(), verify::tree_of);
                let status = self.engine.exec_stream(
                    &helper.name,
                    &exec(methods::sh(&methods::volume_dump(), &["/tmp/nua-verify"])),
                    None,
                    &mut tee,
                );
                let (_, _, restored) = tee.finish();
                let status = status.map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "reading the scratch folder failed: {}",
                        tail(&status.stderr)
                    ));
                }
                let restored = restored.map_err(|e| e.to_string())?;
                let differences = verify::tree_differences(dumped, &restored, 5);
                if !differences.is_empty() {
                    return Err(differences.join("; "));
                }
                Ok(tree_summary(dumped))
            }
            _ => Err("nothing was measured of the dump".to_owned()),
        }
    }

    /// Put `component` back from `snapshot` into the instance (its app stopped by the
    /// caller).
    pub fn restore_component(
        &self,
        label: &str,
        component: &Component,
        snapshot: &str,
        bytes: u64,
    ) -> Result<(), String> {
        let file = filename(component);
        let mut outcome = Err("restic gave nothing".to_owned());
        let into = |reader: &mut (dyn std::io::Read + Send)| -> Result<Vec<u8>, String> {
            match component.kind {
                Kind::Postgres => self.run_script(
                    &component.container,
                    methods::sh(&methods::postgres_restore(), &[]),
                    Some((reader, bytes)),
                ),
                Kind::Mariadb => self.run_script(
                    &component.container,
                    methods::sh(&methods::mariadb_restore(), &[]),
                    Some((reader, bytes)),
                ),
                Kind::Mongo => self.run_script(
                    &component.container,
                    methods::sh(&methods::mongo_restore(), &[]),
                    Some((reader, bytes)),
                ),
                Kind::Redis => {
                    self.run_script(
                        &component.container,
                        methods::sh(&methods::redis_restore(), &[]),
                        Some((reader, bytes)),
                    )?;
                    self.restart_redis(&component.container)?;
                    Ok(Vec::new())
                }
                Kind::Volume => {
                    let helper = self
                        .helper(
                            label,
                            &component.image,
                            vec![Mount::Volume {
                                name: component.volume.clone().unwrap_or_default(),
                                target: "/volume".to_owned(),
                                read_only: false,
                            }],
                        )
                        .map_err(|e| e.to_string())?;
                    self.run_script(
                        &helper.name,
                        methods::sh(&methods::volume_restore(), &["/volume"]),
                        Some((reader, bytes)),
                    )
                }
            }
        };
        self.repository
            .download(snapshot, &file, &mut |reader| {
                outcome = into(reader).map(|_| ());
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        outcome
    }
}

/// The name of a component's stream in the repository.
pub fn filename(component: &Component) -> String {
    format!("{}.{}", component.name, component.kind.extension())
}

fn compare_counts(dumped: &BTreeMap<String, u64>, restored: &str) -> Result<String, String> {
    let restored = methods::parse_counts(restored)?;
    let differences = verify::count_differences(dumped, &restored);
    if !differences.is_empty() {
        return Err(differences.join("; "));
    }
    let rows: u64 = dumped.values().sum();
    Ok(format!("{} tables, {rows} rows", dumped.len()))
}

fn tree_summary(tree: &verify::Tree) -> String {
    let count = |kind: &str| tree.values().filter(|e| e.kind == kind).count();
    let bytes: u64 = tree.values().map(|e| e.size).sum();
    format!(
        "{} files, {} folders, {} symlinks, {bytes} bytes",
        count("file"),
        count("dir"),
        count("symlink")
    )
}

/// Counts what passes on to `inner`.
struct Counter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
