//! Where blobs were seen: for each registry, the repositories known to hold each blob.
//!
//! A pull records the repository it pulled from, a push the repository it pushed to. A later
//! push to another repository of the same registry asks for a cross-repository mount from one
//! of them (distribution spec, "Mounting a blob from another repository") instead of uploading.
//! These are hints only: a lost update or a stale entry costs an upload, never correctness,
//! so the file is rewritten whole (temporary file and rename) without locking.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use nua_oci::{BlobStore, Digest};

/// Repositories seen holding a blob, at most this many per blob and registry.
const MAX_REPOS: usize = 8;

type Map = BTreeMap<String, BTreeMap<Digest, BTreeSet<String>>>;

fn path(store: &BlobStore) -> PathBuf {
    store.root().join("registry-sources.json")
}

fn load(store: &BlobStore) -> Map {
    fs_err::read(path(store))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Repositories of `registry` other than `except` known to hold `digest`.
pub(crate) fn repositories(
    store: &BlobStore,
    registry: &str,
    digest: &Digest,
    except: &str,
) -> Vec<String> {
    load(store)
        .get(registry)
        .and_then(|blobs| blobs.get(digest))
        .map(|repos| repos.iter().filter(|r| *r != except).cloned().collect())
        .unwrap_or_default()
}

/// Remember that `repository` of `registry` holds `digests`. Best effort: a failure to write
/// the hints is not a failure of the pull or push.
pub(crate) fn record<'a>(
    store: &BlobStore,
    registry: &str,
    repository: &str,
    digests: impl IntoIterator<Item = &'a Digest>,
) {
    let mut map = load(store);
    let blobs = map.entry(registry.to_owned()).or_default();
    for digest in digests {
        let repos = blobs.entry(digest.clone()).or_default();
        if repos.len() < MAX_REPOS {
            repos.insert(repository.to_owned());
        }
    }
    let Ok(bytes) = serde_json::to_vec(&map) else {
        return;
    };
    // Private, as it always was: it lists what this machine pulled from where.
    let _ = nua_oci::fs::write_atomic_mode(&path(store), &bytes, 0o600);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_repositories_come_back_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = Digest::of(b"layer");
        record(&store, "r:5000", "a/base", [&d]);
        record(&store, "r:5000", "b/app", [&d]);
        assert_eq!(repositories(&store, "r:5000", &d, "b/app"), ["a/base"]);
        assert!(repositories(&store, "other:1", &d, "x").is_empty());
        assert!(repositories(&store, "r:5000", &Digest::of(b"x"), "x").is_empty());
    }
}
