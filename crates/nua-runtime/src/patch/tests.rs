use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::*;
use nua_oci::{
    write_image, write_layout_dir, BlobStore, ContainerConfig, ImageName, ImageSpec, Layer,
    LayerOptions, LayerWriter, Meta,
};

const LIMIT: u64 = 1 << 20;

/// One layer entry of a test image.
#[derive(Clone, Copy)]
enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Owned(&'a str, &'a [u8], u32),
    Link(&'a str, &'a str),
    Whiteout(&'a str),
    Hardlink(&'a str, &'a str),
    Xattr(&'a str),
}

struct Images {
    dir: tempfile::TempDir,
    store: BlobStore,
    made: usize,
}

impl Images {
    fn new() -> Images {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        Images {
            dir,
            store,
            made: 0,
        }
    }

    fn layer(&self, items: &[Item]) -> Layer {
        let opts = LayerOptions {
            source_date_epoch: 1_700_000_000,
            ..LayerOptions::default()
        };
        let mut layer = LayerWriter::new(&self.store, opts).unwrap();
        for item in items {
            match item {
                Item::Dir(path) => layer.add_dir(path, &Meta::new(0o755)).unwrap(),
                Item::File(path, data) => layer.add_bytes(path, &Meta::new(0o644), data).unwrap(),
                Item::Owned(path, data, uid) => layer
                    .add_bytes(path, &Meta::new(0o644).owned_by(*uid, *uid), data)
                    .unwrap(),
                Item::Link(path, target) => {
                    layer.add_symlink(path, target, &Meta::new(0o777)).unwrap()
                }
                Item::Whiteout(path) => layer.add_whiteout(path).unwrap(),
                Item::Hardlink(path, target) => {
                    layer.add_hardlink(path, target, &Meta::new(0o644)).unwrap()
                }
                Item::Xattr(path) => {
                    let mut meta = Meta::new(0o755);
                    meta.xattrs =
                        BTreeMap::from([("security.capability".to_owned(), vec![1, 0, 0, 2])]);
                    layer.add_bytes(path, &meta, b"binary").unwrap();
                }
            }
        }
        layer.finish().unwrap()
    }

    /// An OCI layout folder of an image of `layers`, its command `cmd`.
    fn image(&mut self, layers: Vec<Layer>, cmd: &str) -> PathBuf {
        let config = ContainerConfig {
            cmd: Some(vec![cmd.to_owned()]),
            ..ContainerConfig::default()
        };
        let image =
            write_image(&self.store, &ImageSpec::new(layers, config, 1_700_000_000)).unwrap();
        self.made += 1;
        let out = self.dir.path().join(format!("image-{}", self.made));
        let names = [ImageName::parse("nua-test:1").unwrap()];
        write_layout_dir(&self.store, &image, &names, &out).unwrap();
        out
    }

    /// A base layer both images share, then `top`.
    fn pair(&mut self, old: &[Item], new: &[Item]) -> (PathBuf, PathBuf) {
        let base = self.layer(&[
            Item::Dir("nua"),
            Item::Dir("nua/app"),
            Item::File("etc/motd", b"base"),
        ]);
        // A layer holds the folders of what it adds, as Nua's do.
        let parents = [Item::Dir("nua"), Item::Dir("nua/app")];
        let old = self.layer(&[&parents[..], old].concat());
        let new = self.layer(&[&parents[..], new].concat());
        let first = self.image(vec![base.clone(), old], "/start");
        let second = self.image(vec![base, new], "/start");
        (first, second)
    }
}

/// The archive's entries: path → (kind, content or link target, uid).
fn entries(archive: &[u8]) -> BTreeMap<String, (char, String, u64)> {
    let mut tar = tar::Archive::new(archive);
    let mut found = BTreeMap::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let kind = entry.header().entry_type();
        let uid = entry.header().uid().unwrap();
        let what = if kind.is_symlink() {
            (
                'l',
                entry.link_name().unwrap().unwrap().display().to_string(),
            )
        } else if kind.is_dir() {
            ('d', String::new())
        } else {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            ('f', text)
        };
        found.insert(path, (what.0, what.1, uid));
    }
    found
}

fn files(first: &Path, second: &Path) -> BTreeMap<String, (char, String, u64)> {
    match patch_between(first, second, LIMIT).unwrap() {
        Patch::Files {
            archive,
            paths,
            files,
        } => {
            let found = entries(&archive);
            assert_eq!(found.keys().cloned().collect::<Vec<_>>().len(), paths.len());
            let not_folders = found.values().filter(|(kind, _, _)| *kind != 'd').count();
            assert_eq!(files, not_folders);
            found
        }
        Patch::Refused(reason) => panic!("refused: {reason}"),
    }
}

fn refused(first: &Path, second: &Path) -> String {
    match patch_between(first, second, LIMIT).unwrap() {
        Patch::Refused(reason) => reason,
        Patch::Files { archive, .. } => panic!("patched: {:?}", entries(&archive)),
    }
}

#[test]
fn only_the_files_that_changed_are_written() {
    let mut images = Images::new();
    let (first, second) = images.pair(
        &[
            Item::File("nua/app/app.py", b"print('hello')"),
            Item::File("nua/app/same.py", b"same"),
            Item::Owned("nua/app/data.txt", b"data", 1000),
        ],
        &[
            Item::File("nua/app/app.py", b"print('hullo')"),
            Item::File("nua/app/same.py", b"same"),
            // Same content, another owner: written.
            Item::Owned("nua/app/data.txt", b"data", 1001),
            Item::Dir("nua/app/templates"),
            Item::File("nua/app/templates/index.html", b"<p>new</p>"),
            Item::Link("nua/app/current", "templates"),
        ],
    );
    let found = files(&first, &second);
    let expected = BTreeMap::from([
        (
            "nua/app/app.py".to_owned(),
            ('f', "print('hullo')".to_owned(), 0),
        ),
        (
            "nua/app/data.txt".to_owned(),
            ('f', "data".to_owned(), 1001),
        ),
        ("nua/app/templates".to_owned(), ('d', String::new(), 0)),
        (
            "nua/app/templates/index.html".to_owned(),
            ('f', "<p>new</p>".to_owned(), 0),
        ),
        (
            "nua/app/current".to_owned(),
            ('l', "templates".to_owned(), 0),
        ),
    ]);
    assert_eq!(found, expected);
    // Parents before what they hold, as the layer had them.
    let mut tar_order = Vec::new();
    let patch = patch_between(&first, &second, LIMIT).unwrap();
    let Patch::Files { archive, .. } = patch else {
        panic!("refused")
    };
    for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
        tar_order.push(entry.unwrap().path().unwrap().display().to_string());
    }
    let dir = tar_order.iter().position(|p| p == "nua/app/templates");
    let file = tar_order
        .iter()
        .position(|p| p == "nua/app/templates/index.html");
    assert!(dir < file, "{tar_order:?}");
}

#[test]
fn the_same_image_needs_nothing_written() {
    let mut images = Images::new();
    let (first, second) = images.pair(
        &[Item::File("nua/app/app.py", b"x")],
        &[Item::File("nua/app/app.py", b"x")],
    );
    assert!(files(&first, &second).is_empty());
}

#[test]
fn a_removed_file_is_refused() {
    let mut images = Images::new();
    let (first, second) = images.pair(
        &[
            Item::File("nua/app/app.py", b"x"),
            Item::File("nua/app/old.py", b"y"),
        ],
        &[Item::File("nua/app/app.py", b"z")],
    );
    assert_eq!(refused(&first, &second), "`/nua/app/old.py` was removed");
}

#[test]
fn whiteouts_links_and_attributes_are_refused() {
    let mut images = Images::new();
    let (first, second) = images.pair(
        &[Item::File("nua/app/app.py", b"x")],
        &[
            Item::File("nua/app/app.py", b"z"),
            Item::Whiteout("etc/motd"),
        ],
    );
    assert_eq!(refused(&first, &second), "`/etc/.wh.motd` removes a file");
    let (first, second) = images.pair(
        &[Item::File("nua/app/app.py", b"x")],
        &[
            Item::File("nua/app/app.py", b"z"),
            Item::Hardlink("nua/app/again.py", "nua/app/app.py"),
        ],
    );
    assert_eq!(
        refused(&first, &second),
        "`/nua/app/again.py` is a hard link"
    );
    let (first, second) = images.pair(
        &[Item::File("nua/app/app.py", b"x")],
        &[Item::Xattr("nua/app/app.py")],
    );
    assert_eq!(
        refused(&first, &second),
        "`/nua/app/app.py` has extended attributes"
    );
}

#[test]
fn a_changed_config_or_too_much_is_refused() {
    let mut images = Images::new();
    let base = images.layer(&[Item::File("etc/motd", b"base")]);
    let app = images.layer(&[Item::File("nua/app/app.py", b"x")]);
    let first = images.image(vec![base.clone(), app.clone()], "/start");
    let second = images.image(vec![base.clone(), app], "/start-again");
    assert_eq!(refused(&first, &second), "the image's config changed");

    let noise: Vec<u8> = (0..3 * LIMIT as usize)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let big = images.layer(&[Item::File("nua/app/big.bin", &noise)]);
    let second = images.image(vec![base, big], "/start");
    assert!(
        refused(&first, &second).contains("more than 1 MiB"),
        "{}",
        refused(&first, &second)
    );
}

#[test]
fn a_file_in_a_folder_of_a_lower_layer_is_refused() {
    let mut images = Images::new();
    let (first, second) = images.pair(
        &[Item::File("nua/app/app.py", b"x")],
        &[
            Item::File("nua/app/app.py", b"x"),
            // `etc` is the base's: in a container it might be a link Docker writes through.
            Item::File("etc/app.conf", b"y"),
        ],
    );
    assert_eq!(
        refused(&first, &second),
        "`/etc/app.conf` is in a folder of a lower layer"
    );
}

#[test]
fn a_later_layer_hides_what_an_earlier_one_had_below_a_path() {
    let mut images = Images::new();
    let base = images.layer(&[Item::Dir("nua"), Item::File("etc/motd", b"base")]);
    let old = images.layer(&[Item::Dir("nua"), Item::File("nua/x", b"old")]);
    // The first new layer makes `nua/x` a folder with a file, the second a file again.
    let folder = images.layer(&[
        Item::Dir("nua"),
        Item::Dir("nua/x"),
        Item::File("nua/x/inside", b"hidden"),
    ]);
    let file = images.layer(&[Item::Dir("nua"), Item::File("nua/x", b"new")]);
    let first = images.image(vec![base.clone(), old], "/start");
    let second = images.image(vec![base, folder, file], "/start");
    let found = files(&first, &second);
    assert_eq!(
        found,
        BTreeMap::from([("nua/x".to_owned(), ('f', "new".to_owned(), 0))])
    );
}
