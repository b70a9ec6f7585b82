//! Images, OCI layouts and hybrid tarballs: canonical configs, determinism, what skopeo,
//! umoci and Docker accept, and the reader that verifies them.

use super::stream::{printable_chain, raw_entry};
use super::*;

/// A small image: the fixed tree as a layer plus a metadata layer.
pub(crate) fn sample_image(store: &BlobStore) -> ImageRef {
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

/// `-o /dev/null` or a pipe: the tarball goes into it, which stays what it was (renaming a
/// temporary file over it would have replaced the host's `/dev/null` with a file).
#[test]
fn tarball_into_a_pipe_is_written_into_it() {
    let (_store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let names = [ImageName::parse("nua-foo:1.0-1").unwrap()];
    let file = out.path().join("a.tar");
    write_tarball(&store, &image, &names, &file).unwrap();
    let fifo = out.path().join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    assert!(!nua_oci::tarball_is_current(&image, &names, &fifo));
    let written = write_tarball(&store, &image, &names, &fifo);
    if written.is_err() {
        // Let the reader, waiting for a writer, end.
        drop(fs::OpenOptions::new().write(true).open(&fifo));
    }
    let read = reader.join().unwrap();
    written.unwrap();
    assert_eq!(read, fs::read(&file).unwrap());
    use std::os::unix::fs::{symlink, FileTypeExt};
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    // A link to a file (`-o /dev/stdout > image.tar`): the file it names gets the image, and
    // the link stays.
    let target = out.path().join("target.tar");
    fs::write(&target, b"").unwrap();
    let link = out.path().join("link");
    symlink(&target, &link).unwrap();
    write_tarball(&store, &image, &names, &link).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(fs::read(&target).unwrap(), fs::read(&file).unwrap());
    let entries = fs::read_dir(out.path()).unwrap().count();
    assert_eq!(entries, 4, "no temporary file left beside the outputs");
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

pub(crate) fn named() -> [ImageName; 1] {
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
    assert!(matches!(err, Error::CorruptBlob { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&in_store.display().to_string()),
        "{message}"
    );
    assert!(!dir.join(image.layers[0].digest.blob_path()).exists());
    // Moved aside: the next pull or build fetches it again.
    assert!(!in_store.exists());
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
