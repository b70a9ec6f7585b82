//! The `debian` module against the real archive (the host's apt mirror, bookworm): verified
//! indexes, resolution, verified downloads, hostile `.deb` files, and a bootstrap checked by
//! running dpkg and apt in a chroot (as root; skipped with a message otherwise).
//!
//! Downloads are cached in `$NUA_CACHE_DIR/nua-tests/debian` or `~/.cache/nua-tests/debian`
//! (created when missing), so a second run fetches only InRelease.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use nua_debian::{
    self as debian, configure_env, configure_script, download, fetch_in_release, fetch_index,
    unpack_layer, verify_release, Error, Index, Locked, Request, Source,
};
use nua_oci::{BlobStore, Compression, Digest, LayerOptions};

const SUITE: &str = "bookworm";

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("NUA_CACHE_DIR")
        .map(|d| PathBuf::from(d).join("nua-tests"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nua-tests")))
        .unwrap_or_else(|| std::env::temp_dir().join("nua-tests"));
    base.join("debian")
}

fn store() -> BlobStore {
    BlobStore::open(cache_dir()).unwrap()
}

fn source() -> Source {
    Source::from_host(SUITE).unwrap()
}

/// The index, fetched once per test binary.
fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let t = Instant::now();
        let index = fetch_index(&source(), &store()).unwrap();
        eprintln!("fetch_index: {} packages in {:?}", index.len(), t.elapsed());
        index
    })
}

/// Essential + apt + ca-certificates, resolved once.
fn base_set() -> &'static Vec<Locked> {
    static SET: OnceLock<Vec<Locked>> = OnceLock::new();
    SET.get_or_init(|| {
        let req = Request {
            include: vec!["apt".into(), "ca-certificates".into()],
            essential: true,
            required: false,
        };
        let t = Instant::now();
        let set = index().resolve(&req, &[]).unwrap();
        eprintln!("resolve: {} packages in {:?}", set.len(), t.elapsed());
        set
    })
}

#[test]
fn in_release_is_verified_and_a_flipped_byte_is_refused() {
    let src = source();
    let bytes = fetch_in_release(&src).unwrap();
    let release = verify_release(&src, &bytes, 0).unwrap();
    assert!(release.files.contains_key("main/binary-amd64/Packages.xz"));

    let text = String::from_utf8(bytes).unwrap();
    let tampered = text.replacen("Origin: Debian", "Origin: Debiao", 1);
    assert_ne!(tampered, text);
    let err = verify_release(&src, tampered.as_bytes(), 0).unwrap_err();
    assert!(matches!(err, Error::Signature { .. }), "{err}");
    assert!(err.to_string().contains(SUITE), "{err}");

    // An unsigned Release (the signed text alone) is refused too.
    let body = text.split("\n\n").nth(1).unwrap();
    let err = verify_release(&src, body.as_bytes(), 0).unwrap_err();
    assert!(matches!(err, Error::Signature { .. }), "{err}");
}

#[test]
fn essential_apt_and_ca_certificates_resolve_to_a_stable_set() {
    let names: Vec<&str> = base_set().iter().map(|l| l.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        names, sorted,
        "the resolver returns packages sorted by name"
    );
    insta::assert_snapshot!(names.join("\n"));
    // Same input, same answer.
    let again = index()
        .resolve(
            &Request {
                include: vec!["apt".into(), "ca-certificates".into()],
                essential: true,
                required: false,
            },
            &[],
        )
        .unwrap();
    assert_eq!(&again, base_set());
}

/// The three suites of Debian's apt sources, merged: the base set takes the security fixes
/// (`libssl3`, through ca-certificates → openssl, has had one through most of bookworm's
/// life), each from the archive of its suite, and downloads them from there.
#[test]
fn the_base_set_takes_security_fixes_from_the_security_archive() {
    let src = source();
    assert_eq!(
        src.suites,
        ["bookworm", "bookworm-updates", "bookworm-security"]
    );
    let dates: Vec<&str> = index().dates.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(dates, src.suites);
    let security: Vec<&Locked> = base_set()
        .iter()
        .filter(|l| l.suite == "bookworm-security")
        .collect();
    assert!(
        !security.is_empty(),
        "no package of the base set comes from bookworm-security: {:?}",
        base_set()
            .iter()
            .map(|l| (&l.name, &l.suite))
            .collect::<Vec<_>>()
    );
    for pkg in &security {
        assert!(pkg.filename.starts_with("pool/updates/"), "{pkg:?}");
    }
    assert!(base_set().iter().all(|l| src.suites.contains(&l.suite)));
    let smallest = security.iter().min_by_key(|l| l.size).unwrap();
    download(&src, &[(*smallest).clone()], &store(), &|_| {}).unwrap();
}

#[test]
fn a_suite_the_mirror_lacks_is_named() {
    let mut src = source();
    src.suites.push("bookworm-nonexistent".into());
    let err = fetch_index(&src, &store()).unwrap_err();
    assert!(matches!(err, Error::NoSuite { .. }), "{err}");
    assert!(err.to_string().contains("`bookworm-nonexistent`"), "{err}");
}

#[test]
fn a_wrong_hash_in_the_index_fails_naming_the_package_and_keeps_nothing() {
    let pkg = base_set().iter().min_by_key(|l| l.size).unwrap();
    let mut bad = pkg.clone();
    bad.sha256 = "0".repeat(64);
    let tmp = tempfile::tempdir().unwrap();
    let fresh = BlobStore::open(tmp.path()).unwrap();
    let err = download(&source(), &[bad], &fresh, &|_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PackageDigest { .. }), "{msg}");
    assert!(msg.contains(&format!("`{}`", pkg.name)), "{msg}");
    assert!(
        msg.contains(&pkg.sha256) && msg.contains(&"0".repeat(64)),
        "{msg}"
    );
    let kept = std::fs::read_dir(tmp.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(kept, 0, "nothing corrupt is kept in the store");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn bootstrap_configures_in_a_chroot_and_dpkg_and_apt_work() {
    let pkgs = base_set();
    let store = store();
    let t = Instant::now();
    let events = std::sync::atomic::AtomicUsize::new(0);
    download(&source(), pkgs, &store, &|_| {
        events.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    eprintln!("download: {} packages in {:?}", pkgs.len(), t.elapsed());
    assert_eq!(events.into_inner(), pkgs.len());

    let opts = LayerOptions {
        compression: Compression::Gzip(1),
        source_date_epoch: 1_700_000_000,
    };
    let t = Instant::now();
    let layer = unpack_layer(pkgs, &store, None, &source(), &opts).unwrap();
    eprintln!(
        "unpack_layer: {:?}, {} bytes",
        t.elapsed(),
        layer.descriptor.size
    );
    let again = unpack_layer(pkgs, &store, None, &source(), &opts).unwrap();
    assert_eq!(again, layer, "same packages, same layer digest");
    let script = configure_script(pkgs, &store).unwrap();
    assert!(
        script.contains("preinst base-files base-files amd64\n"),
        "{script}"
    );
    assert!(
        script.contains("preinst libc6:amd64 libc6 amd64\n"),
        "{script}"
    );

    if !is_root() {
        eprintln!("skipped the chroot check: it needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let blob = store.path(&layer.descriptor.digest);
    run(Command::new("tar")
        .args(["--numeric-owner", "-xpzf"])
        .arg(&blob)
        .arg("-C")
        .arg(root.path()));
    assert_eq!(
        std::fs::read_link(root.path().join("bin")).unwrap(),
        PathBuf::from("usr/bin")
    );
    std::fs::write(root.path().join("nua-configure"), &script).unwrap();
    let chroot = |cmd: &str| {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--pid", "--fork"])
            .arg(format!(
                "--mount-proc={}",
                root.path().join("proc").display()
            ))
            .arg("chroot")
            .arg(root.path())
            .args(["/bin/sh", "-c", cmd])
            .env_clear()
            .envs(configure_env(1_700_000_000));
        c
    };
    let t = Instant::now();
    run(&mut chroot("/bin/sh /nua-configure"));
    eprintln!("configure in chroot: {:?}", t.elapsed());

    assert_eq!(
        run(&mut chroot("dpkg --audit")),
        "",
        "dpkg --audit is clean"
    );
    let states = run(&mut chroot(
        "dpkg-query -W -f '${db:Status-Abbrev}${Package}\\n'",
    ));
    let not_ii: Vec<&str> = states.lines().filter(|l| !l.starts_with("ii ")).collect();
    assert!(not_ii.is_empty(), "not installed: {not_ii:?}");
    assert_eq!(states.lines().count(), pkgs.len());
    assert!(run(&mut chroot("apt-get --version")).starts_with("apt "));
    let policy = run(&mut chroot("apt-cache policy apt"));
    assert!(policy.contains("Installed:"), "{policy}");
    assert!(!root.path().join("var/log/dpkg.log").exists());
}

/// A `.deb` whose data.tar holds `entries` (path, type, link), stored in a fresh store.
fn hostile(entries: &[(&str, tar::EntryType, &str)]) -> (tempfile::TempDir, BlobStore, Locked) {
    let mut data = tar::Builder::new(Vec::new());
    for (path, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        // Raw name bytes: the tar crate's `set_path` refuses `..`, which is the point here.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        let body: &[u8] = if kind.is_file() { b"owned\n" } else { b"" };
        h.set_size(body.len() as u64);
        h.set_cksum();
        data.append(&h, body).unwrap();
    }
    let deb = make_deb(
        b"Package: evil\nVersion: 1\nArchitecture: all\n",
        &data.into_inner().unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path()).unwrap();
    let info = store.put_bytes(&deb).unwrap();
    let locked = Locked {
        name: "evil".into(),
        version: "1".into(),
        suite: SUITE.into(),
        architecture: "all".into(),
        filename: "pool/evil.deb".into(),
        size: info.size,
        sha256: info.digest.hex().to_owned(),
    };
    (tmp, store, locked)
}

fn make_deb(control: &[u8], data: &[u8]) -> Vec<u8> {
    let mut ctl = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(control.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    ctl.append_data(&mut h, "./control", control).unwrap();
    let ctl = ctl.into_inner().unwrap();
    let mut out = b"!<arch>\n".to_vec();
    for (name, body) in [
        ("debian-binary", &b"2.0\n"[..]),
        ("control.tar", &ctl),
        ("data.tar", data),
    ] {
        let header = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            100644,
            body.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn unpack_error(entries: &[(&str, tar::EntryType, &str)]) -> String {
    let (_tmp, store, locked) = hostile(entries);
    let err =
        unpack_layer(&[locked], &store, None, &source(), &LayerOptions::default()).unwrap_err();
    assert!(matches!(err, debian::Error::UnsafeEntry { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("`evil`"), "{msg}");
    msg
}

#[test]
fn hostile_deb_with_dotdot_is_refused() {
    let msg = unpack_error(&[("./../../etc/cron.d/evil", tar::EntryType::Regular, "")]);
    assert!(
        msg.contains("../../etc/cron.d/evil") && msg.contains("`..`"),
        "{msg}"
    );
}

#[test]
fn hostile_deb_with_absolute_path_is_refused() {
    let msg = unpack_error(&[("/etc/passwd", tar::EntryType::Regular, "")]);
    assert!(
        msg.contains("`/etc/passwd`") && msg.contains("absolute"),
        "{msg}"
    );
}

#[test]
fn hostile_deb_writing_through_its_symlink_is_refused() {
    let msg = unpack_error(&[
        ("./usr/", tar::EntryType::Directory, ""),
        ("./usr/share/", tar::EntryType::Directory, ""),
        ("./usr/share/evil", tar::EntryType::Symlink, "/etc"),
        ("./usr/share/evil/shadow", tar::EntryType::Regular, ""),
    ]);
    assert!(
        msg.contains("usr/share/evil/shadow") && msg.contains("symlink"),
        "{msg}"
    );
}

#[test]
fn hostile_deb_with_a_device_node_is_refused() {
    let msg = unpack_error(&[("./dev-sda", tar::EntryType::Block, "")]);
    assert!(msg.contains("device"), "{msg}");
}

#[test]
fn hostile_deb_with_a_hard_link_outside_is_refused() {
    let msg = unpack_error(&[("./usr/evil", tar::EntryType::Link, "../../etc/shadow")]);
    assert!(msg.contains("usr/evil"), "{msg}");
    let msg = unpack_error(&[("./usr/evil", tar::EntryType::Link, "/etc/shadow")]);
    assert!(msg.contains("usr/evil"), "{msg}");
}

#[test]
fn a_package_missing_from_the_store_is_not_unpacked() {
    // A blob that is not in the store under the locked digest is "not downloaded".
    let (_tmp, store, mut locked) = hostile(&[]);
    locked.sha256 = Digest::of(b"something else").hex().to_owned();
    let err =
        unpack_layer(&[locked], &store, None, &source(), &LayerOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotDownloaded { .. }), "{err}");
}
