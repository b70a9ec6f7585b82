//! Archives built in memory for the unit tests, hostile ones included.

use std::fs::{self, File};

use tar::EntryType as T;

use super::archive::extract;
use super::error::FetchError;

/// One tar entry, as raw as the tests need it.
pub(super) struct Entry {
    path: String,
    kind: T,
    link: String,
    mode: u32,
    data: Vec<u8>,
}

pub(super) fn file(path: &str, data: &str) -> Entry {
    Entry {
        mode: 0o644,
        data: data.as_bytes().to_vec(),
        ..link(path, T::Regular, "")
    }
}

pub(super) fn dir(path: &str) -> Entry {
    link(path, T::Directory, "")
}

/// A link of `kind` (or any entry without content: a device, a folder).
pub(super) fn link(path: &str, kind: T, target: &str) -> Entry {
    Entry {
        path: path.to_owned(),
        kind,
        link: target.to_owned(),
        mode: 0o777,
        data: Vec::new(),
    }
}

/// A tar of `entries` written with raw header fields: the `tar` crate's own setters refuse
/// the hostile names the tests need.
pub(super) fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        old.name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        old.linkname[..entry.link.len()].copy_from_slice(entry.link.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_mode(entry.mode);
        header.set_uid(4242);
        header.set_size(entry.data.len() as u64);
        header.set_cksum();
        tar.append(&header, entry.data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap()
}

/// A well-formed archive with a bit of everything under `hello-1.0/`, plus a top-level file.
pub(super) fn hello() -> Vec<u8> {
    tar_of(&[
        Entry {
            mode: 0o775,
            ..dir("hello-1.0/")
        },
        file("hello-1.0/index.html", "<h1>hi</h1>"),
        Entry {
            mode: 0o4777,
            ..file("hello-1.0/bin/run", "#!/bin/sh")
        },
        link("hello-1.0/bin/start", T::Symlink, "run"),
        link("hello-1.0/copy.html", T::Link, "hello-1.0/index.html"),
        link("hello-1.0/dev-null", T::Char, ""),
        file("README", "top level"),
    ])
}

/// Extract `bytes` into a fresh folder `root/`; its parent (kept alive) and the result.
pub(super) fn extract_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<Vec<String>, FetchError>) {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    fs::write(&archive, bytes).unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let result = extract(File::open(&archive).unwrap(), "http://test/a", &root);
    (tmp, result)
}

/// The `entry: reason` of the hostile entry that extracting `bytes` must refuse.
pub(super) fn hostile_entry(bytes: &[u8]) -> String {
    match extract_bytes(bytes).1 {
        Err(FetchError::Hostile { entry, reason, .. }) => format!("{entry}: {reason}"),
        other => panic!("expected a hostile entry, got {other:?}"),
    }
}
