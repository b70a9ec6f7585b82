//! What the cache folder holds (`nua-pack cache ls`) and removing what was not used lately
//! (`nua-pack cache prune`).
//!
//! A layer entry's time is when a build last used it ([`LayerCache::get`] touches it).
//! Pruning removes the entries unused for the given time, then what only they kept: blobs
//! no remaining entry names (and not written lately: a running build's newest blobs have no
//! entry yet), unpacked copies of layers no entry names, tools (uv) no build ran lately, and
//! old package resolutions, test results, explanations and the bytes of failed downloads.
//! Everything it removes is remade by the next build that needs it.
//!
//! [`LayerCache::get`]: super::cache::LayerCache::get

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::layers::Entry;
use super::Error;
use nua_oci as oci;

/// One layer entry of the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CachedLayer {
    /// The step that made it (`source`, `python: bootstrap: configure`, …).
    pub step: String,
    pub digest: String,
    /// Compressed size of its blob.
    pub size: u64,
    /// Seconds since it was last used by a build.
    pub unused_for: u64,
}

/// What a cache folder holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Usage {
    pub cache_dir: PathBuf,
    /// Layer entries, most recently used first.
    pub layers: Vec<CachedLayer>,
    /// Every blob of the store: layers, configs, manifests, Debian packages, archives.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Layers unpacked for the sandbox.
    pub unpacked_layers: u64,
}

/// What [`prune`] removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pruned {
    pub layer_entries: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub unpacked_layers: u64,
    /// Folders of `tools/` (a pinned uv per version and machine) no build used lately.
    pub tools: u64,
    pub tool_bytes: u64,
    pub other_files: u64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.to_owned(),
        source,
    }
}

/// The entries of a folder, none when it does not exist.
fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, Error> {
    match std::fs::read_dir(dir) {
        Ok(read) => read.collect::<Result<_, _>>().map_err(io_error(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(dir)(e)),
    }
}

fn age(entry: &std::fs::DirEntry, now: SystemTime) -> Duration {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .map(|t| now.duration_since(t).unwrap_or_default())
        .unwrap_or_default()
}

/// The layer entries of `cache_dir` with their age.
/// An entry that does not parse (from another version) comes as `None`: a miss, and prunable.
fn layer_entries(cache_dir: &Path) -> Result<Vec<(PathBuf, Option<Entry>, Duration)>, Error> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for file in entries(&cache_dir.join("layers"))? {
        let path = file.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = fs_err::read(&path).map_err(io_error(&path))?;
        let entry = serde_json::from_slice::<Entry>(&bytes).ok();
        out.push((path, entry, age(&file, now)));
    }
    Ok(out)
}

/// What `cache_dir` holds.
pub fn usage(cache_dir: &Path) -> Result<Usage, Error> {
    let mut layers: Vec<CachedLayer> = layer_entries(cache_dir)?
        .into_iter()
        .filter_map(|(_, entry, age)| Some((entry?, age)))
        .map(|(entry, age)| CachedLayer {
            step: entry.step,
            digest: entry.layer.descriptor.digest.to_string(),
            size: entry.layer.descriptor.size,
            unused_for: age.as_secs(),
        })
        .collect();
    layers.sort_by_key(|l| l.unused_for);
    let (mut blobs, mut blob_bytes) = (0, 0);
    for blob in entries(&cache_dir.join("blobs/sha256"))? {
        blobs += 1;
        blob_bytes += blob.metadata().map(|m| m.len()).unwrap_or(0);
    }
    let unpacked_layers = entries(&cache_dir.join("sandbox/layers"))?
        .iter()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count() as u64;
    Ok(Usage {
        cache_dir: cache_dir.to_owned(),
        layers,
        blobs,
        blob_bytes,
        unpacked_layers,
    })
}

/// What was written this recently is never removed, whatever `keep` says: a build may be
/// running that has not written its entries yet.
const GRACE: Duration = Duration::from_secs(60 * 60);

/// Remove what no build used for `keep` (see the module documentation).
pub fn prune(cache_dir: &Path, keep: Duration) -> Result<Pruned, Error> {
    let blob_keep = keep.max(GRACE);
    let mut pruned = Pruned::default();
    let mut kept_blobs = HashSet::new();
    let mut kept_diff_ids = HashSet::new();
    for (path, entry, age) in layer_entries(cache_dir)? {
        match entry {
            Some(entry) if age <= keep => {
                kept_blobs.insert(entry.layer.descriptor.digest.hex().to_owned());
                kept_diff_ids.insert(entry.layer.diff_id.hex().to_owned());
            }
            _ => {
                fs_err::remove_file(&path).map_err(io_error(&path))?;
                pruned.layer_entries += 1;
            }
        }
    }
    let now = SystemTime::now();
    for blob in entries(&cache_dir.join("blobs/sha256"))? {
        let name = blob.file_name().to_string_lossy().into_owned();
        if !kept_blobs.contains(&name) && age(&blob, now) > blob_keep {
            let size = blob.metadata().map(|m| m.len()).unwrap_or(0);
            fs_err::remove_file(blob.path()).map_err(io_error(&blob.path()))?;
            pruned.blobs += 1;
            pruned.blob_bytes += size;
        }
    }
    // `tools/`: one folder per program and version (uv), its program touched by each build
    // that binds it; one no build used for `keep` goes (as blobs: a running build may be
    // using it), the next build that needs it fetches it again.
    for tool in entries(&cache_dir.join("tools"))? {
        if !tool.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let files = entries(&tool.path())?;
        let used = files
            .iter()
            .map(|f| age(f, now))
            .min()
            .unwrap_or(age(&tool, now));
        if used > blob_keep {
            let size: u64 = files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
            fs_err::remove_dir_all(tool.path()).map_err(io_error(&tool.path()))?;
            pruned.tools += 1;
            pruned.tool_bytes += size;
        }
    }
    // `partial/`: bytes of failed downloads, kept for the next pull to resume from.
    for dir in ["partial", "resolved", "tests", "why"] {
        let dir = cache_dir.join(dir);
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            for file in entries(&dir)? {
                if file.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(file.path());
                } else if age(&file, now) > keep {
                    fs_err::remove_file(file.path()).map_err(io_error(&file.path()))?;
                    pruned.other_files += 1;
                }
            }
        }
    }
    let unpacked = cache_dir.join("sandbox/layers");
    if unpacked.is_dir() {
        let store = oci::BlobStore::open(cache_dir).map_err(Error::Oci)?;
        let sandbox =
            nua_sandbox::Sandbox::new(&cache_dir.join("sandbox"), &store).map_err(|source| {
                Error::Sandbox {
                    step: "prune".into(),
                    source: Box::new(source),
                }
            })?;
        // An unpacked layer may be a lower folder of a running build: only those untouched
        // for the grace time go.
        let recent = |diff_id: &str| {
            std::fs::metadata(unpacked.join(diff_id))
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < GRACE)
        };
        pruned.unpacked_layers = sandbox
            .forget_unpacked(&|diff_id| kept_diff_ids.contains(diff_id) || recent(diff_id))
            .map_err(|source| Error::Sandbox {
                step: "prune".into(),
                source: Box::new(source),
            })?;
    }
    Ok(pruned)
}
