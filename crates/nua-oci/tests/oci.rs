//! Integration tests of the `oci` module: determinism, tar contents, hostile input, images
//! and layouts checked by independent tools (skopeo, umoci).

#[path = "oci/hostile.rs"]
mod hostile;
#[path = "oci/image.rs"]
mod image;
#[path = "oci/stream.rs"]
mod stream;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use nua_oci::image::media_type;
use nua_oci::{
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
fn read_verified(path: &Path) -> nua_oci::ImageInfo {
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
        nua_oci::DeviceKind::Char,
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

/// A file named like a whiteout would delete its namesake from the layers below: refused,
/// named, unless the filter leaves it out.
#[test]
fn a_tree_file_named_like_a_whiteout_is_refused() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("static")).unwrap();
    fs::write(src.path().join("static/.wh.index.html"), "x").unwrap();
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    let err = w
        .append_dir_tree(src.path(), "nua/app", Some((0, 0)), |_, _| true)
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidPath { path, reason }
            if path == "nua/app/static/.wh.index.html" && reason.contains("rename it")),
        "{err}"
    );
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    w.append_dir_tree(src.path(), "nua/app", Some((0, 0)), |rel, _| {
        !rel.to_string_lossy().contains(".wh.")
    })
    .unwrap();
    w.finish().unwrap();
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
