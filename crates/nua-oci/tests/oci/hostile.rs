//! Hostile or unusual image files: blobs that are devices, fifos or larger than their
//! descriptors (issue 13: reads of image blobs are bounded), tarballs whose blobs are hard
//! links (as skopeo writes them), and store blobs found corrupt while written out.

use super::image::{named, sample_image};
use super::*;

/// A layout folder of the sample image, and the path of its first layer blob, replaced by a
/// file of its own (the layout's blobs are hard links into the store: never write through).
fn layout_with_own_layer(store: &BlobStore, out: &Path) -> (ImageRef, PathBuf, PathBuf) {
    let image = sample_image(store);
    let dir = out.join("layout");
    write_layout_dir(store, &image, &named(), &dir).unwrap();
    let layer = dir.join(image.layers[0].digest.blob_path());
    let bytes = fs::read(&layer).unwrap();
    fs::remove_file(&layer).unwrap();
    fs::write(&layer, bytes).unwrap();
    (image, dir, layer)
}

fn image_error(path: &Path) -> Error {
    ImageArchive::open(path)
        .unwrap()
        .image(ReadOptions::default())
        .unwrap_err()
}

fn mkfifo(path: &Path) {
    run(Command::new("mkfifo").arg(path));
}

#[test]
fn a_layer_blob_linked_to_dev_zero_is_refused_before_reading() {
    let (_store_dir, store) = temp_store();
    let out = tempfile::tempdir().unwrap();
    let (image, dir, layer) = layout_with_own_layer(&store, out.path());
    fs::remove_file(&layer).unwrap();
    symlink("/dev/zero", &layer).unwrap();

    let err = image_error(&dir);
    assert!(matches!(err, Error::NotRegular { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(image.layers[0].digest.hex()), "{message}");
    assert!(message.contains("character device"), "{message}");
    // The way `push` copies blobs into the store: refused as well, before a byte is read.
    let archive = ImageArchive::open(&dir).unwrap();
    let err = archive.open_descriptor(&image.layers[0]).err().unwrap();
    assert!(matches!(err, Error::NotRegular { .. }), "{err:?}");
}

#[test]
fn a_layer_blob_that_is_a_fifo_is_refused_without_waiting_for_a_writer() {
    let (_store_dir, store) = temp_store();
    let out = tempfile::tempdir().unwrap();
    let (image, dir, layer) = layout_with_own_layer(&store, out.path());
    fs::remove_file(&layer).unwrap();
    mkfifo(&layer);
    let err = image_error(&dir);
    let message = err.to_string();
    assert!(matches!(err, Error::NotRegular { .. }), "{message}");
    assert!(message.contains("fifo"), "{message}");
    assert!(message.contains(image.layers[0].digest.hex()), "{message}");
}

#[test]
fn a_layer_blob_larger_than_its_descriptor_is_refused_up_front() {
    let (_store_dir, store) = temp_store();
    let out = tempfile::tempdir().unwrap();
    let (image, dir, layer) = layout_with_own_layer(&store, out.path());
    File::options()
        .append(true)
        .open(&layer)
        .unwrap()
        .write_all(&[0; 4096])
        .unwrap();
    let archive = ImageArchive::open(&dir).unwrap();
    let err = archive.open_descriptor(&image.layers[0]).err().unwrap();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(image.layers[0].digest.hex()), "{message}");
    assert!(
        message.contains(&image.layers[0].size.to_string()),
        "{message}"
    );
    let err = image_error(&dir);
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
}

/// The entries of a tarball: path, header, data.
type Entries = Vec<(String, tar::Header, Vec<u8>)>;

fn entries(tar: &Path) -> Entries {
    let mut archive = tar::Archive::new(File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let header = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, header, data)
        })
        .collect()
}

/// Write a tarball of `entries` (headers taken as they are, paths set again).
fn write_entries(out: &Path, entries: &Entries) {
    let mut builder = tar::Builder::new(File::create(out).unwrap());
    for (path, header, data) in entries {
        let mut header = header.clone();
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.finish().unwrap();
}

/// `all`, with the entry at `path` replaced by the entries `replace` makes of its header and
/// data.
fn replacing(
    all: &Entries,
    path: &str,
    replace: impl Fn(&tar::Header, &[u8]) -> Entries,
) -> Entries {
    let mut changed = Vec::new();
    for (name, header, data) in all {
        match name == path {
            true => changed.extend(replace(header, data)),
            false => changed.push((name.clone(), header.clone(), data.clone())),
        }
    }
    changed
}

/// A header for a link or special entry: no data.
fn special(kind: tar::EntryType, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(0o644);
    if let Some(link) = link {
        h.set_link_name(link).unwrap();
    }
    h
}

/// The sample image as a hybrid tarball, and its entries.
fn sample_tarball(store: &BlobStore, out: &Path) -> (ImageRef, Entries) {
    let image = sample_image(store);
    let tar = out.join("image.tar");
    write_tarball(store, &image, &named(), &tar).unwrap();
    (image, entries(&tar))
}

#[test]
fn tarball_entries_that_are_devices_or_fifos_are_refused_by_name() {
    let (_store_dir, store) = temp_store();
    let out = tempfile::tempdir().unwrap();
    let (image, all) = sample_tarball(&store, out.path());
    let layer = image.layers[0].digest.blob_path();
    for (kind, named_kind) in [
        (tar::EntryType::Fifo, "fifo"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
    ] {
        let changed = replacing(&all, &layer, |_, _| {
            vec![(layer.clone(), special(kind, None), Vec::new())]
        });
        let tar = out.path().join("special.tar");
        write_entries(&tar, &changed);
        let err = image_error(&tar);
        let message = err.to_string();
        assert!(matches!(err, Error::NotRegular { .. }), "{message}");
        assert!(message.contains(&layer), "{message}");
        assert!(message.contains(named_kind), "{message}");
    }
}

#[test]
fn tarball_blobs_that_are_hard_links_to_earlier_entries_are_read() {
    let (_store_dir, store) = temp_store();
    let out = tempfile::tempdir().unwrap();
    let (image, all) = sample_tarball(&store, out.path());
    let layer = image.layers[0].digest.blob_path();
    // The layer's bytes first under a name of their own, then the blob as a hard link to it.
    let changed = replacing(&all, &layer, |header, data| {
        let link = special(tar::EntryType::Link, Some("./layers/first.tar.gz"));
        vec![
            ("layers/first.tar.gz".into(), header.clone(), data.to_vec()),
            (layer.clone(), link, Vec::new()),
        ]
    });
    let tar = out.path().join("linked.tar");
    write_entries(&tar, &changed);
    let info = read_verified(&tar);
    assert_eq!(info.layers, image.layers);
    let archive = ImageArchive::open(&tar).unwrap();
    let mut bytes = Vec::new();
    archive
        .open_descriptor(&image.layers[0])
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(Digest::of(&bytes), image.layers[0].digest);
}

#[test]
fn tarball_hard_links_to_no_earlier_entry_are_refused_by_name() {
    let (_store_dir, store) = temp_store();
    let out = tempfile::tempdir().unwrap();
    let (image, all) = sample_tarball(&store, out.path());
    let layer = image.layers[0].digest.blob_path();
    // A link to an entry that only comes later: not what extraction would resolve.
    let changed = replacing(&all, &layer, |header, data| {
        let link = special(tar::EntryType::Link, Some("later/layer"));
        vec![
            (layer.clone(), link, Vec::new()),
            ("later/layer".into(), header.clone(), data.to_vec()),
        ]
    });
    let tar = out.path().join("dangling.tar");
    write_entries(&tar, &changed);
    let err = image_error(&tar);
    let message = err.to_string();
    assert!(matches!(err, Error::DanglingLink { .. }), "{message}");
    assert!(message.contains(&layer), "{message}");
    assert!(message.contains("later/layer"), "{message}");

    // A link that leaves the archive is refused when the archive is opened.
    let escaping = replacing(&all, &layer, |_, _| {
        let link = special(tar::EntryType::Link, Some("../../etc/passwd"));
        vec![(layer.clone(), link, Vec::new())]
    });
    write_entries(&tar, &escaping);
    let err = ImageArchive::open(&tar).err().unwrap();
    assert!(matches!(err, Error::PathEscape { .. }), "{err:?}");
}

#[test]
fn a_corrupt_store_blob_written_out_is_moved_aside_and_named() {
    let (store_dir, store) = temp_store();
    let image = sample_image(&store);
    let out = tempfile::tempdir().unwrap();
    let in_store = store.path(&image.layers[0].digest);
    let mut bytes = fs::read(&in_store).unwrap();
    bytes[10] ^= 0x20;
    fs::write(&in_store, &bytes).unwrap();

    let tar = out.path().join("image.tar");
    let err = write_tarball(&store, &image, &named(), &tar).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::CorruptBlob { .. }), "{message}");
    assert!(message.contains(image.layers[0].digest.hex()), "{message}");
    assert!(message.contains("moved aside"), "{message}");
    assert!(err.hint().is_some_and(|h| h.contains("cache verify")));
    assert!(!tar.exists());
    assert!(!in_store.exists());
    let moved: Vec<_> = fs::read_dir(store_dir.path().join("corrupt"))
        .unwrap()
        .collect();
    assert_eq!(moved.len(), 1);
}
