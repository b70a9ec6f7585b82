//! Integration tests of the `oci` module: determinism, tar contents, hostile input, images
//! and layouts checked by independent tools (skopeo, umoci).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use nua::oci::image::media_type;
use nua::oci::{
    tree_diff_id, write_image, write_layout_dir, write_tarball, BlobStore, Compression,
    ContainerConfig, Digest, Error, Healthcheck, ImageArchive, ImageName, ImageRef, ImageSpec,
    Layer, LayerOptions, LayerWriter, Meta, ReadOptions,
};

const EPOCH: u64 = 1_700_000_000;

fn opts() -> LayerOptions {
    LayerOptions {
        compression: Compression::Gzip(6),
        source_date_epoch: EPOCH,
    }
}

fn temp_store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    (dir, store)
}

/// Run a checker tool; its stdout, or a failure showing its stderr.
fn run(cmd: &mut Command) -> Vec<u8> {
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{cmd:?} failed: {stderr}");
    output.stdout
}

/// Open an image and verify every blob, DiffIDs included.
fn read_verified(path: &Path) -> nua::oci::ImageInfo {
    ImageArchive::open(path)
        .unwrap()
        .image(ReadOptions {
            verify_diff_ids: true,
        })
        .unwrap()
}

fn set_mtime(path: &Path, secs: u64) {
    let file = File::open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// A small fixed app tree; `mtime` is applied to files and directories.
fn build_tree(root: &Path, mtime: u64) {
    let app = root.join("app");
    fs::create_dir_all(app.join("static")).unwrap();
    fs::create_dir_all(app.join("empty")).unwrap();
    fs::write(app.join("index.html"), "<h1>hello</h1>\n").unwrap();
    fs::write(app.join("static/style.css"), "body { color: red }\n").unwrap();
    fs::write(app.join("run.sh"), "#!/bin/sh\nexec true\n").unwrap();
    fs::hard_link(app.join("index.html"), app.join("hard.html")).unwrap();
    symlink("index.html", app.join("current")).unwrap();
    let long = format!("{}/deep.txt", "long-directory-name".repeat(6));
    fs::create_dir_all(app.join(&long).parent().unwrap()).unwrap();
    fs::write(app.join(&long), "deep\n").unwrap();
    for (path, mode) in [
        ("", 0o755),
        ("static", 0o755),
        ("empty", 0o700),
        ("index.html", 0o644),
        ("static/style.css", 0o644),
        ("run.sh", 0o755),
        (long.as_str(), 0o600),
    ] {
        fs::set_permissions(app.join(path), fs::Permissions::from_mode(mode)).unwrap();
    }
    for path in [
        "index.html",
        "static/style.css",
        "run.sh",
        "static",
        "empty",
        &long,
        "",
    ] {
        set_mtime(&app.join(path), mtime);
    }
}

fn tree_layer(store: &BlobStore, src: &Path) -> Layer {
    let mut w = LayerWriter::new(store, opts()).unwrap();
    w.append_dir_tree(src, "nua/app", Some((1000, 1000)), |_, _| true)
        .unwrap();
    w.finish().unwrap()
}

/// Uncompressed tar bytes of a layer blob.
fn layer_tar(store: &BlobStore, layer: &Layer) -> Vec<u8> {
    let blob = fs::read(store.path(&layer.descriptor.digest)).unwrap();
    let tar = match layer.descriptor.media_type.as_str() {
        media_type::LAYER_ZSTD => zstd::decode_all(&blob[..]).unwrap(),
        _ => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&blob[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
    };
    assert_eq!(
        Digest::of(&tar),
        layer.diff_id,
        "diff_id is the digest of the tar"
    );
    tar
}

/// One line per entry: type, mode, owner, mtime, size, path, link target, xattrs.
fn listing(tar: &[u8]) -> String {
    let mut out = String::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let link = entry
            .link_name_bytes()
            .map(|l| format!(" -> {}", String::from_utf8_lossy(&l)))
            .unwrap_or_default();
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for r in pax {
                let r = r.unwrap();
                if let Some(name) = r.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push(format!(
                        " {name}={}",
                        String::from_utf8_lossy(r.value_bytes())
                    ));
                }
            }
        }
        let dev = match h.entry_type() {
            tar::EntryType::Char | tar::EntryType::Block => format!(
                " dev={}:{}",
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap()
            ),
            _ => String::new(),
        };
        assert_eq!(h.username_bytes().unwrap_or_default(), b"", "empty uname");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"", "empty gname");
        out += &format!(
            "{:?} {:o} {}:{} {} {} {}{}{}{}\n",
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            entry.size(),
            path,
            link,
            dev,
            xattrs.concat()
        );
        let mut sink = Vec::new();
        entry.read_to_end(&mut sink).unwrap();
    }
    out
}

#[test]
fn same_tree_written_twice_gives_the_same_digest() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build_tree(a.path(), EPOCH + 100);
    std::thread::sleep(Duration::from_millis(20));
    build_tree(b.path(), EPOCH + 5_000_000);
    let (_store_dir, store) = temp_store();
    let la = tree_layer(&store, &a.path().join("app"));
    let lb = tree_layer(&store, &b.path().join("app"));
    assert_eq!(la, lb);
    let listing = listing(&layer_tar(&store, &la));
    insta::assert_snapshot!(
        "tree_layer_digest",
        format!("{}\n{}", la.descriptor.digest, la.diff_id)
    );
    insta::assert_snapshot!("tree_layer_listing", listing);
}

#[test]
fn one_byte_changed_changes_the_digest() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build_tree(a.path(), EPOCH);
    build_tree(b.path(), EPOCH);
    fs::write(b.path().join("app/index.html"), "<h1>hellO</h1>\n").unwrap();
    set_mtime(&b.path().join("app/index.html"), EPOCH);
    let (_store_dir, store) = temp_store();
    let la = tree_layer(&store, &a.path().join("app"));
    let lb = tree_layer(&store, &b.path().join("app"));
    assert_ne!(la.descriptor.digest, lb.descriptor.digest);
    assert_ne!(la.diff_id, lb.diff_id);
}

#[test]
fn older_mtimes_are_kept_and_filter_skips_subtrees() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), 1_000);
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    w.append_dir_tree(&src.path().join("app"), "", None, |rel, _| {
        !rel.starts_with("static") && !rel.to_string_lossy().starts_with("long-")
    })
    .unwrap();
    let list = listing(&layer_tar(&store, &w.finish().unwrap()));
    assert!(
        list.contains("Regular 644 0:0 1000 15 hard.html\n"),
        "{list}"
    );
    assert!(
        list.contains("Link 644 0:0 1000 0 index.html -> hard.html\n"),
        "{list}"
    );
    assert!(!list.contains("static"), "{list}");
    assert!(
        list.starts_with("Symlink 777 0:0 1700000000 0 current -> index.html\n"),
        "{list}"
    );
}

#[test]
fn in_memory_entries_whiteouts_and_xattrs() {
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    let dir = Meta::new(0o755);
    w.add_dir("nua", &dir).unwrap();
    w.add_dir("nua/metadata/", &dir.clone().owned_by(1000, 1000))
        .unwrap();
    let body = br#"{"id":"foo"}"#;
    let mut meta = Meta::new(0o644).owned_by(1000, 1000);
    meta.mtime = Some(EPOCH + 10);
    meta.xattrs = BTreeMap::from([("user.nua".to_string(), b"yes".to_vec())]);
    w.add_file(
        "nua/metadata/nua-config.json",
        &meta,
        body.len() as u64,
        &body[..],
    )
    .unwrap();
    w.add_hardlink(
        "nua/metadata/copy.json",
        "nua/metadata/nua-config.json",
        &Meta::new(0o644),
    )
    .unwrap();
    w.add_symlink("nua/current", "/nua/metadata", &Meta::new(0o777))
        .unwrap();
    w.add_whiteout("nua/build").unwrap();
    w.add_opaque("nua/etc").unwrap();
    w.add_device(
        "dev/null",
        nua::oci::DeviceKind::Char,
        &Meta::new(0o666),
        1,
        3,
    )
    .unwrap();
    let layer = w.finish().unwrap();
    insta::assert_snapshot!("entries_layer_listing", listing(&layer_tar(&store, &layer)));
}

#[test]
fn short_file_is_an_error_naming_the_entry() {
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    let err = w
        .add_file("a/b.txt", &Meta::new(0o644), 100, &b"short"[..])
        .unwrap_err();
    assert!(matches!(err, Error::ShortRead { .. }), "{err}");
    assert!(err.to_string().contains("a/b.txt"), "{err}");
}

#[test]
fn tree_xattrs_are_recorded_when_the_file_system_has_them() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), "x").unwrap();
    if let Err(e) = xattr::set(src.path().join("f"), "user.color", b"blue") {
        println!("skipped: the temp file system has no user xattrs ({e})");
        return;
    }
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    w.append_dir_tree(src.path(), "x", Some((0, 0)), |_, _| true)
        .unwrap();
    let list = listing(&layer_tar(&store, &w.finish().unwrap()));
    assert!(list.contains("x/f user.color=blue\n"), "{list}");
}

/// `mkfifo`, for trees that hold a FIFO (there is no FIFO constructor in std).
fn mkfifo(path: &Path) {
    run(Command::new("mkfifo").arg(path));
}

#[test]
fn tree_diff_id_is_the_diff_id_of_the_written_layer() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), EPOCH - 50);
    let app = src.path().join("app");
    mkfifo(&app.join("pipe"));
    symlink("/etc/passwd", app.join("absolute")).unwrap();
    if xattr::set(app.join("run.sh"), "user.nua", b"yes").is_err() {
        println!("note: the temp file system has no user xattrs, none in this tree");
    }
    set_mtime(&app, EPOCH - 50);
    let (_store_dir, store) = temp_store();
    let skip_static = |rel: &Path, _: &fs::Metadata| !rel.starts_with("static");
    let zstd = LayerOptions {
        compression: Compression::Zstd(3),
        source_date_epoch: EPOCH - 10,
    };
    type Filter = fn(&Path, &fs::Metadata) -> bool;
    type Case = (&'static str, Option<(u32, u32)>, LayerOptions, Filter);
    let cases: [Case; 4] = [
        ("nua/app", Some((1000, 1000)), opts(), |_, _| true),
        ("", None, opts(), |_, _| true),
        ("srv/www/app", Some((33, 33)), zstd, skip_static),
        ("nua/app", None, zstd, |_, _| true),
    ];
    for (prefix, ownership, opts, filter) in cases {
        let mut w = LayerWriter::new(&store, opts).unwrap();
        w.append_dir_tree(&app, prefix, ownership, filter).unwrap();
        let layer = w.finish().unwrap();
        let diff_id = tree_diff_id(&app, prefix, ownership, &opts, filter).unwrap();
        assert_eq!(diff_id, layer.diff_id, "{prefix:?} {ownership:?} {opts:?}");
        // The listing shows that the case is not trivially empty.
        let list = listing(&layer_tar(&store, &layer));
        assert!(list.contains("Fifo "), "{list}");
        assert!(list.contains("absolute -> /etc/passwd\n"), "{list}");
    }
}

#[test]
fn tree_diff_id_sees_hard_links_xattrs_mtimes_and_the_root_mode() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), EPOCH - 1000);
    let app = src.path().join("app");
    for name in ["a.txt", "b.txt"] {
        fs::write(app.join(name), "same\n").unwrap();
        fs::set_permissions(app.join(name), fs::Permissions::from_mode(0o644)).unwrap();
        set_mtime(&app.join(name), EPOCH - 1000);
    }
    // Adding or removing entries touches the folder's mtime; keep it fixed so each step
    // changes one thing only.
    let id = || {
        set_mtime(&app, EPOCH - 1000);
        tree_diff_id(&app, "nua/app", Some((1000, 1000)), &opts(), |_, _| true).unwrap()
    };
    let mut seen = vec![id()];
    let mut changed = |what: &str, id: Digest| {
        assert!(!seen.contains(&id), "{what} did not change the DiffID");
        seen.push(id);
    };

    fs::remove_file(app.join("b.txt")).unwrap();
    fs::hard_link(app.join("a.txt"), app.join("b.txt")).unwrap();
    changed("an identical file becoming a hard link", id());

    match xattr::set(app.join("run.sh"), "user.color", b"blue") {
        Ok(()) => changed("an xattr", id()),
        Err(e) => println!("skipped the xattr case: no user xattrs here ({e})"),
    }

    set_mtime(&app.join("run.sh"), EPOCH - 10);
    changed("an mtime under the epoch", id());
    // Above the epoch every mtime is clamped to it: moving from one to another is invisible.
    set_mtime(&app.join("run.sh"), EPOCH + 10);
    let clamped = id();
    changed("an mtime moving above the epoch", clamped.clone());
    set_mtime(&app.join("run.sh"), EPOCH + 20);
    assert_eq!(id(), clamped, "mtimes above the epoch are clamped");

    fs::set_permissions(&app, fs::Permissions::from_mode(0o750)).unwrap();
    changed("the root folder's mode", id());

    // And the last state is still what a written layer has.
    let (_store_dir, store) = temp_store();
    assert_eq!(tree_layer(&store, &app).diff_id, *seen.last().unwrap());
}

/// A raw ustar header, bypassing the `tar` crate's own path checks.
fn raw_entry(out: &mut Vec<u8>, path: &str, kind: u8, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
    h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(data.len() as u64);
    h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
    h.set_mtime(EPOCH + 99);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root").unwrap();
    if kind == b'3' {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn rootfs_tarball_becomes_a_normalized_layer() {
    let mut tar = Vec::new();
    raw_entry(&mut tar, "./", b'5', "", b"");
    raw_entry(&mut tar, "./etc/", b'5', "", b"");
    raw_entry(&mut tar, "./etc/hostname", b'0', "", b"debian\n");
    raw_entry(&mut tar, "./etc/hostname.bak", b'1', "./etc/hostname", b"");
    raw_entry(
        &mut tar,
        "./etc/localtime",
        b'2',
        "/usr/share/zoneinfo/UTC",
        b"",
    );
    raw_entry(&mut tar, "./dev/null", b'3', "", b"");
    tar.extend_from_slice(&[0; 1024]);
    let (_store_dir, store) = temp_store();
    let mut layers = Vec::new();
    for input in [tar.clone(), gzip(&tar)] {
        let mut w = LayerWriter::new(&store, opts()).unwrap();
        w.append_tar_stream(&input[..]).unwrap();
        layers.push(w.finish().unwrap());
    }
    assert_eq!(
        layers[0], layers[1],
        "gzip input is detected and gives the same layer"
    );
    insta::assert_snapshot!(
        "rootfs_layer_listing",
        listing(&layer_tar(&store, &layers[0]))
    );
}

#[test]
fn rootfs_tarball_with_escaping_paths_is_refused() {
    for (path, kind, link, named) in [
        ("../escape", b'0', "", "../escape"),
        ("./etc/../../x", b'0', "", "./etc/../../x"),
        ("/etc/passwd", b'0', "", "/etc/passwd"),
        ("./ok", b'1', "../../etc/shadow", "./ok"),
    ] {
        let mut tar = Vec::new();
        raw_entry(&mut tar, path, kind, link, b"");
        tar.extend_from_slice(&[0; 1024]);
        let (_store_dir, store) = temp_store();
        let mut w = LayerWriter::new(&store, opts()).unwrap();
        let err = w.append_tar_stream(&tar[..]).unwrap_err();
        assert!(matches!(err, Error::PathEscape { .. }), "{path}: {err}");
        assert!(err.to_string().contains(named), "{err}");
        drop(w);
        assert_eq!(
            fs::read_dir(store.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}

/// The whole error chain, each message checked free of control characters.
fn printable_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let message = e.to_string();
        assert!(
            !message.chars().any(char::is_control),
            "control characters in {message:?}"
        );
        messages.push(message);
        next = e.source();
    }
    messages.join(": ")
}

#[test]
fn input_that_is_not_a_tar_is_refused_clearly() {
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    let text = "Nua is a self-hosting platform.\n".repeat(40);
    let mut zeros_only = vec![0u8; 1024];
    zeros_only.extend_from_slice(&[0; 9216]);
    for (what, input, reason) in [
        ("empty input", Vec::new(), "the archive is empty"),
        ("empty gzip", gzip(b""), "the archive is empty"),
        (
            "end-of-archive blocks only",
            zeros_only.clone(),
            "the archive is empty (it holds only end-of-archive blocks)",
        ),
        (
            "gzip of end-of-archive blocks",
            gzip(&zeros_only),
            "the archive is empty (it holds only end-of-archive blocks)",
        ),
        (
            "random bytes",
            random.clone(),
            "the first block has no `ustar` magic and a bad checksum",
        ),
        (
            "gzip of random bytes",
            gzip(&random),
            "the first block has no `ustar` magic and a bad checksum",
        ),
        (
            "a text file",
            text.into_bytes(),
            "the first block has no `ustar` magic and a bad checksum",
        ),
        (
            "a short text file",
            b"hello\n".to_vec(),
            "the input ends after 6 bytes, before the end of the first 512-byte header",
        ),
    ] {
        let (_store_dir, store) = temp_store();
        let mut w = LayerWriter::new(&store, opts()).unwrap();
        let err = w.append_tar_stream(&input[..]).unwrap_err();
        assert!(matches!(err, Error::NotATar { .. }), "{what}: {err:?}");
        assert_eq!(
            printable_chain(&err),
            format!("not a tar archive: {reason}"),
            "{what}"
        );
    }
}

#[test]
fn hostile_entry_names_are_escaped_in_errors() {
    // A name with an escape sequence and invalid UTF-8 that escapes the root.
    let mut tar = Vec::new();
    raw_entry(&mut tar, "../\x1b[2Jevil", b'0', "", b"");
    tar[7] = 0xff;
    let mut h = tar::Header::from_byte_slice(&tar[..512]).clone();
    h.set_cksum();
    tar[..512].copy_from_slice(h.as_bytes());
    tar.extend_from_slice(&[0; 1024]);
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    let err = w.append_tar_stream(&tar[..]).unwrap_err();
    assert!(matches!(err, Error::PathEscape { .. }), "{err:?}");
    let message = printable_chain(&err);
    assert!(message.contains("../\\u{1b}[2J\u{fffd}vil"), "{message}");

    // A header the tar parser itself refuses: its message quotes the name and the field.
    let mut tar = Vec::new();
    raw_entry(&mut tar, "ok", b'0', "", b"fine");
    let start = tar.len();
    raw_entry(&mut tar, "bell\x07name", b'0', "", b"");
    tar[start + 100..start + 108].copy_from_slice(b"\x07\x1bzz\0\0\0\0");
    let mut h = tar::Header::from_byte_slice(&tar[start..start + 512]).clone();
    h.set_cksum();
    tar[start..start + 512].copy_from_slice(h.as_bytes());
    tar.extend_from_slice(&[0; 1024]);
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    let err = w.append_tar_stream(&tar[..]).unwrap_err();
    let message = printable_chain(&err);
    assert!(message.contains("bell\\u{7}name"), "{message}");
}

#[test]
fn zstd_layers_have_their_media_type() {
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(
        &store,
        LayerOptions {
            compression: Compression::Zstd(3),
            source_date_epoch: 0,
        },
    )
    .unwrap();
    w.add_file("a", &Meta::new(0o644), 3, &b"abc"[..]).unwrap();
    let layer = w.finish().unwrap();
    assert_eq!(layer.descriptor.media_type, media_type::LAYER_ZSTD);
    assert!(listing(&layer_tar(&store, &layer)).contains(" 3 a\n"));
}

#[test]
fn digest_mismatch_leaves_nothing_in_blobs() {
    let (_store_dir, store) = temp_store();
    let mut w = store.writer().unwrap();
    w.write_all(b"tampered").unwrap();
    let err = w.commit(Some(&Digest::of(b"original"))).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }));
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

/// A small image: the fixed tree as a layer plus a metadata layer.
fn sample_image(store: &BlobStore) -> ImageRef {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), EPOCH);
    let app = tree_layer(store, &src.path().join("app"));
    let mut w = LayerWriter::new(store, opts()).unwrap();
    let config_json = br#"{"metadata":{"id":"foo"}}"#;
    w.add_dir("nua/metadata", &Meta::new(0o755)).unwrap();
    w.add_bytes(
        "nua/metadata/nua-config.json",
        &Meta::new(0o644),
        config_json,
    )
    .unwrap();
    let meta = w.finish().unwrap();
    let mut config = ContainerConfig {
        cmd: Some(vec!["/nua/scripts/start".into()]),
        env: vec!["PATH=/usr/bin:/bin".into()],
        working_dir: Some("/nua/app".into()),
        user: Some("1000:1000".into()),
        healthcheck: Some(Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: Some(30_000_000_000),
            timeout: Some(5_000_000_000),
            start_period: None,
            retries: Some(3),
        }),
        ..ContainerConfig::default()
    };
    config
        .exposed_ports
        .insert("8080/tcp".into(), Default::default());
    config.labels.insert("APP_ID".into(), "foo".into());
    let spec = ImageSpec::new(vec![app, meta], config, EPOCH);
    write_image(store, &spec).unwrap()
}

#[test]
fn image_config_and_manifest_are_canonical_and_stable() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let config = String::from_utf8(store.read(&image.config.digest).unwrap()).unwrap();
    let manifest = String::from_utf8(store.read(&image.manifest.digest).unwrap()).unwrap();
    assert!(config.contains(r#""Healthcheck":{"Interval":30000000000,"Retries":3,"Test":["CMD","true"],"Timeout":5000000000}"#), "{config}");
    assert!(
        config.contains(r#""created":"2023-11-14T22:13:20Z""#),
        "{config}"
    );
    insta::assert_snapshot!("image_config", config);
    insta::assert_snapshot!("image_manifest", manifest);
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("skipped: `{name}` is not installed");
    }
    found
}

#[test]
fn hybrid_tarball_is_deterministic_and_has_both_manifests() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let names = [ImageName::parse("nua-foo:1.0-1").unwrap()];
    let (a, b) = (out.path().join("a.tar"), out.path().join("b.tar"));
    write_tarball(&store, &image, &names, &a).unwrap();
    write_tarball(&store, &image, &names, &b).unwrap();
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    let entries: Vec<_> = fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(
        entries.len(),
        2,
        "no temporary file left next to the output"
    );
    let bytes = fs::read(&a).unwrap();
    let mut files = BTreeMap::new();
    let mut order = Vec::new();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut body = String::new();
        if entry.header().entry_type().is_file() && !path.starts_with("blobs/") {
            entry.read_to_string(&mut body).unwrap();
            files.insert(path.clone(), body);
        }
        order.push(path);
    }
    assert_eq!(
        &order[..5],
        [
            "oci-layout",
            "index.json",
            "manifest.json",
            "blobs/",
            "blobs/sha256/"
        ]
    );
    assert_eq!(files["oci-layout"], r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: serde_json::Value = serde_json::from_str(&files["index.json"]).unwrap();
    let ann = &index["manifests"][0]["annotations"];
    assert_eq!(
        ann["io.containerd.image.name"],
        "docker.io/library/nua-foo:1.0-1"
    );
    assert_eq!(ann["org.opencontainers.image.ref.name"], "1.0-1");
    let docker: serde_json::Value = serde_json::from_str(&files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "nua-foo:1.0-1");
    assert_eq!(
        docker[0]["Config"],
        format!("blobs/sha256/{}", image.config.digest.hex())
    );
    assert_eq!(docker[0]["Layers"].as_array().unwrap().len(), 2);
    insta::assert_snapshot!("hybrid_index_json", files["index.json"]);
}

#[test]
fn skopeo_accepts_the_tarball() {
    let Some(skopeo) = tool("skopeo") else { return };
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("image.tar");
    write_tarball(
        &store,
        &image,
        &[ImageName::parse("nua-foo:1.0-1").unwrap()],
        &tar,
    )
    .unwrap();
    let archive = format!("oci-archive:{}", tar.display());
    let manifest = run(Command::new(&skopeo).args(["inspect", "--raw", &archive]));
    assert_eq!(Digest::of(&manifest), image.manifest.digest);
    let config = run(Command::new(&skopeo).args(["inspect", "--config", "--raw", &archive]));
    assert_eq!(Digest::of(&config), image.config.digest);
    // What skopeo writes from it, our reader reads back with every blob verified.
    let copy = out.path().join("copy.tar");
    run(Command::new(&skopeo).args([
        "copy",
        "--quiet",
        &archive,
        &format!("oci-archive:{}:nua-foo:1.0-1", copy.display()),
    ]));
    let info = read_verified(&copy);
    assert_eq!(info.config_descriptor.digest, image.config.digest);
    assert_eq!(info.layers.len(), 2);
}

#[test]
fn umoci_unpacks_the_layout_dir() {
    let Some(umoci) = tool("umoci") else { return };
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    write_layout_dir(
        &store,
        &image,
        &[ImageName::parse("nua-foo:1.0-1").unwrap()],
        &layout,
    )
    .unwrap();
    let bundle = out.path().join("bundle");
    run(Command::new(umoci)
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1.0-1", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("nua/app/index.html")).unwrap(),
        "<h1>hello</h1>\n"
    );
    assert_eq!(
        fs::read_link(rootfs.join("nua/app/current")).unwrap(),
        Path::new("index.html")
    );
    assert!(rootfs.join("nua/metadata/nua-config.json").is_file());
}

fn named() -> [ImageName; 1] {
    [ImageName::parse("nua-foo:1.0-1").unwrap()]
}

#[test]
fn reader_round_trips_tarball_and_layout_dir() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("image.tar");
    let dir = out.path().join("layout");
    write_tarball(&store, &image, &named(), &tar).unwrap();
    write_layout_dir(&store, &image, &named(), &dir).unwrap();
    for path in [&tar, &dir] {
        let info = read_verified(path);
        assert_eq!(info.manifest_descriptor.digest, image.manifest.digest);
        assert_eq!(info.config_descriptor, image.config);
        assert_eq!(info.layers, image.layers);
        assert_eq!(info.names, ["docker.io/library/nua-foo:1.0-1"]);
        assert_eq!(
            info.config.config.unwrap().user.as_deref(),
            Some("1000:1000")
        );
    }
}

#[test]
fn tarball_into_a_missing_folder_names_the_output() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("missing/image.tar");
    let err = write_tarball(&store, &image, &named(), &tar).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let message = printable_chain(&err);
    assert!(message.contains(&tar.display().to_string()), "{message}");
    // The temporary file is `.image.tar.<random>.tmp` next to the output.
    assert!(!message.contains(".image.tar."), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
}

#[test]
fn layout_dir_metadata_files_are_replaced_not_written_through() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("layout");
    fs::create_dir_all(&dir).unwrap();
    let outside = out.path().join("outside.json");
    fs::write(&outside, "keep").unwrap();
    fs::hard_link(&outside, dir.join("index.json")).unwrap();
    write_layout_dir(&store, &image, &named(), &dir).unwrap();
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
    read_verified(&dir);
    let mut left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["blobs", "index.json", "manifest.json", "oci-layout"],
        "no temporary file left"
    );
    let mode = fs::metadata(dir.join("index.json")).unwrap().permissions();
    assert_eq!(mode.mode() & 0o044, 0o044, "readable by others, as before");
}

#[test]
fn layout_dir_checks_the_size_of_linked_blobs() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();

    // A layout blob of the wrong size (an interrupted copy by another tool) is replaced.
    let dir = out.path().join("layout");
    write_layout_dir(&store, &image, &named(), &dir).unwrap();
    let blob = dir.join(image.layers[0].digest.blob_path());
    fs::remove_file(&blob).unwrap();
    fs::write(&blob, "short").unwrap();
    write_layout_dir(&store, &image, &named(), &dir).unwrap();
    read_verified(&dir);

    // A truncated blob in the store is refused, and not left in the layout.
    let in_store = store.path(&image.layers[0].digest);
    File::options()
        .write(true)
        .open(&in_store)
        .unwrap()
        .set_len(10)
        .unwrap();
    let dir = out.path().join("other");
    let err = write_layout_dir(&store, &image, &named(), &dir).unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&in_store.display().to_string()),
        "{message}"
    );
    assert!(!dir.join(image.layers[0].digest.blob_path()).exists());
}

#[test]
fn reader_accepts_docker_save_format_alone() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("layout");
    write_layout_dir(&store, &image, &named(), &dir).unwrap();
    fs::remove_file(dir.join("index.json")).unwrap();
    fs::remove_file(dir.join("oci-layout")).unwrap();
    let info = read_verified(&dir);
    assert_eq!(info.config_descriptor.digest, image.config.digest);
    let digests: Vec<_> = info.layers.iter().map(|l| &l.digest).collect();
    let expected: Vec<_> = image.layers.iter().map(|l| &l.digest).collect();
    assert_eq!(digests, expected);
    assert_eq!(info.names, ["nua-foo:1.0-1"]);
}

#[test]
fn reader_refuses_a_tampered_layer_naming_it() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("layout");
    write_layout_dir(&store, &image, &named(), &dir).unwrap();
    let layer = dir.join("blobs/sha256").join(image.layers[1].digest.hex());
    let mut bytes = fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::remove_file(&layer).unwrap(); // a hard link into the store: replace, do not modify
    fs::write(&layer, bytes).unwrap();
    let err = ImageArchive::open(&dir)
        .unwrap()
        .image(ReadOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(image.layers[1].digest.hex()), "{message}");
    assert!(
        message.contains(&image.layers[1].digest.to_string()),
        "{message}"
    );
}

#[test]
fn reader_refuses_escaping_paths_in_the_outer_archive() {
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("evil.tar");
    let mut bytes = Vec::new();
    raw_entry(&mut bytes, "index.json", b'0', "", b"{}");
    raw_entry(&mut bytes, "../evil", b'0', "", b"x");
    bytes.extend_from_slice(&[0; 1024]);
    fs::write(&tar, bytes).unwrap();
    let err = ImageArchive::open(&tar).err().unwrap();
    assert!(matches!(err, Error::PathEscape { .. }), "{err}");
    assert!(err.to_string().contains("../evil"), "{err}");
}

#[test]
fn parallel_gzip_layers_are_deterministic_and_readable() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), EPOCH);
    let big: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(src.path().join("app/big.bin"), &big).unwrap();
    set_mtime(&src.path().join("app/big.bin"), EPOCH);
    let (_store_dir, store) = temp_store();
    let write = || {
        let opts = LayerOptions {
            compression: Compression::ParallelGzip(6),
            source_date_epoch: EPOCH,
        };
        let mut w = LayerWriter::new(&store, opts).unwrap();
        w.append_dir_tree(
            &src.path().join("app"),
            "nua/app",
            Some((1000, 1000)),
            |_, _| true,
        )
        .unwrap();
        w.finish().unwrap()
    };
    let (a, b) = (write(), write());
    assert_eq!(a, b);
    assert_eq!(a.descriptor.media_type, media_type::LAYER_GZIP);
    let list = listing(&layer_tar(&store, &a));
    assert!(list.contains(" 700000 nua/app/big.bin\n"), "{list}");
    insta::assert_snapshot!(
        "parallel_gzip_layer_digest",
        format!("{}\n{}", a.descriptor.digest, a.diff_id)
    );
}

/// `docker load` of the hybrid tarball, when a Docker daemon answers (the runtime tests start
/// one; here it is only used when already running).
#[test]
fn docker_loads_the_tarball() {
    let Some(docker) = tool("docker") else { return };
    if !Command::new(&docker)
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("skipped: no Docker daemon answers `docker info`");
        return;
    }
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("image.tar");
    let name = ImageName::parse("nua-oci-test:1.0-1").unwrap();
    write_tarball(&store, &image, std::slice::from_ref(&name), &tar).unwrap();
    let loaded = run(Command::new(&docker).arg("load").arg("-i").arg(&tar));
    let loaded = String::from_utf8_lossy(&loaded);
    assert!(loaded.contains("nua-oci-test:1.0-1"), "{loaded}");
    let config = run(Command::new(&docker).args(["image", "inspect", "nua-oci-test:1.0-1"]));
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config[0]["Config"]["WorkingDir"], "/nua/app");
    assert_eq!(config[0]["Config"]["Healthcheck"]["Retries"], 3);
    // And what `docker save` writes (legacy layout, uncompressed layers), we read back.
    let saved = out.path().join("saved.tar");
    run(Command::new(&docker)
        .args(["save", "-o"])
        .arg(&saved)
        .arg("nua-oci-test:1.0-1"));
    let info = read_verified(&saved);
    assert_eq!(info.config_descriptor.digest, image.config.digest);
    assert_eq!(info.names, ["nua-oci-test:1.0-1"]);
    run(Command::new(&docker).args(["rmi", "nua-oci-test:1.0-1"]));
}
