//! Getting an app's source when it does not come from the local app folder: a `src-url`
//! archive or a `git-url` repository, into a fresh temporary folder; and the `project`
//! sub-folder of a source. Filtering the tree, writing its layer and deciding whether a
//! cached build can be reused are the build's business, not this module's.
//!
//! - **Archives** are downloaded through [`nua_oci::http`] (its retries, the system's root
//!   certificates), streamed into the blob store while hashed, never held in memory, and
//!   refused beyond [`MAX_ARCHIVE_SIZE`]. With `src-checksum` the digest must match before
//!   anything is kept, and a blob already in the store is used without any network. Without
//!   `src-checksum` the archive is taken as it comes: not an error here (the build warns),
//!   and [`Fetched::identity`] still names what was fetched. The format is told by content
//!   (see `archive.rs`), the entries extracted under the rules of `tree.rs`: nothing is ever
//!   written outside the folder, the first path component is stripped, modes are reduced,
//!   device nodes and fifos are skipped.
//! - **Git** repositories are cloned by the host's `git` (see `git.rs`), shallow, at
//!   `git-branch` (a branch or a tag) or the default branch, and `.git` is removed. git
//!   writes its work tree itself (it refuses paths outside it); symlinks stay as committed,
//!   which is safe because the layer writer stores links and never follows them.
//!
//! [`pin`] tells what the source will be before fetching it, so a build whose cache key
//! holds it needs no network at all; [`fetch_pinned`] then makes sure the fetched content is
//! that one. The temporary folder goes away with the [`Fetched`], also on every error.

mod archive;
mod download;
mod error;
mod git;
#[cfg(test)]
mod testing;
mod tree;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use error::IoContext;
pub use error::{redact, FetchError};

use nua_config::NuaConfig;
use nua_oci::{BlobState, BlobStore, Digest};

/// Largest source archive downloaded: a bound against a server that never stops.
pub const MAX_ARCHIVE_SIZE: u64 = 4 << 30;

/// Where an app's source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The app folder itself (no `src-url`, no `git-url`).
    Local,
    /// A `src-url` archive, with `src-checksum` as 64 lower-case hex characters when given.
    Url {
        url: String,
        checksum: Option<String>,
    },
    /// A `git-url` repository at `git-branch` (a branch or a tag), else its default branch.
    Git { url: String, branch: Option<String> },
}

impl Origin {
    /// Where `config` says its source comes from. When both `src-url` and `git-url` are set,
    /// `src-url` wins and `git-url` is ignored: an archive can be pinned by a checksum.
    pub fn of(config: &NuaConfig) -> Origin {
        let build = &config.build;
        match (&build.src_url, &build.git_url) {
            (Some(url), _) => Origin::Url {
                url: url.clone(),
                checksum: build.src_checksum.clone(),
            },
            (None, Some(url)) => Origin::Git {
                url: url.clone(),
                branch: build.git_branch.clone(),
            },
            (None, None) => Origin::Local,
        }
    }
}

/// What identifies the content before fetching it, for the build's cache key: with it, a
/// cached build needs no network.
///
/// - an archive with `src-checksum`: `Some("sha256:<hex>")`, without any network;
/// - an archive without: `None` (only fetching tells; use [`Fetched::identity`]);
/// - git: `Some("git:<full commit id>")` of the branch or tag (or of `HEAD`), asked with
///   `git ls-remote`;
/// - local: `None`.
pub fn pin(origin: &Origin) -> Result<Option<String>, FetchError> {
    match origin {
        Origin::Local | Origin::Url { checksum: None, .. } => Ok(None),
        Origin::Url {
            url,
            checksum: Some(hex),
        } => Ok(Some(checksum_digest(url, hex)?.to_string())),
        Origin::Git { url, branch } => Ok(Some(format!(
            "git:{}",
            git::ls_remote(url, branch.as_deref())?
        ))),
    }
}

/// Fetch the source into a fresh temporary folder under `work_dir` (created if missing);
/// archives are kept in `store`. Same as [`fetch_pinned`] with no pin.
pub fn fetch(origin: &Origin, work_dir: &Path, store: &BlobStore) -> Result<Fetched, FetchError> {
    fetch_pinned(origin, None, work_dir, store)
}

/// [`fetch`], refusing content other than `pinned` (a value of [`pin`]): a git branch that
/// moved since it was pinned is an error ([`FetchError::GitMoved`]) rather than a build of
/// another commit under the pinned cache key; for an archive, `pinned` acts as `src-checksum`.
pub fn fetch_pinned(
    origin: &Origin,
    pinned: Option<&str>,
    work_dir: &Path,
    store: &BlobStore,
) -> Result<Fetched, FetchError> {
    match origin {
        Origin::Local => Err(FetchError::NothingToFetch),
        Origin::Url { url, checksum } => {
            let from_pin = pinned.and_then(|p| p.strip_prefix("sha256:"));
            let expected = match checksum.as_deref().or(from_pin) {
                Some(hex) => Some(checksum_digest(url, hex)?),
                None => None,
            };
            // A cached archive is hashed again before it is trusted: one damaged on disk
            // is moved aside and downloaded anew.
            let digest = match expected {
                Some(digest) if matches!(store.verify(&digest)?, BlobState::Intact { .. }) => {
                    digest
                }
                expected => download::download(url, expected.as_ref(), store)?,
            };
            let dir = temp_dir(work_dir)?;
            let warnings = archive::extract(store.open_blob(&digest)?, url, dir.path())?;
            Ok(Fetched {
                dir,
                identity: digest.to_string(),
                warnings,
            })
        }
        Origin::Git { url, branch } => {
            let dir = temp_dir(work_dir)?;
            let head = git::clone(url, branch.as_deref(), dir.path())?;
            if let Some(expected) = pinned.and_then(|p| p.strip_prefix("git:")) {
                if expected != head {
                    return Err(FetchError::GitMoved {
                        url: url.clone(),
                        reference: branch.clone().unwrap_or_else(|| "HEAD".to_owned()),
                        expected: expected.to_owned(),
                        actual: head,
                    });
                }
            }
            let git_dir = dir.path().join(".git");
            std::fs::remove_dir_all(&git_dir).at(&git_dir)?;
            Ok(Fetched {
                dir,
                identity: format!("git:{head}"),
                warnings: Vec::new(),
            })
        }
    }
}

/// A fetched source: a temporary folder, removed when this is dropped.
#[derive(Debug)]
pub struct Fetched {
    dir: tempfile::TempDir,
    identity: String,
    warnings: Vec<String>,
}

impl Fetched {
    /// The top of the source (the archive's first path component already stripped).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// What was fetched: `sha256:<hex>` of the archive, or `git:<commit id>`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// What the user should be told about the fetch: entries of the archive left out
    /// (device nodes, fifos, sockets). The caller reports them; this module never prints.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The folder to build: `root` itself, or its `project` sub-folder. Refuses an absolute
/// `project`, one with `..`, one that leaves `root` through a symlink, and one that is not a
/// folder (the error lists what there is instead).
pub fn project_dir(root: &Path, project: Option<&str>) -> Result<PathBuf, FetchError> {
    let Some(project) = project else {
        return Ok(root.to_path_buf());
    };
    let refuse = |reason| FetchError::ProjectPath {
        project: project.to_owned(),
        reason,
    };
    let rel = Path::new(project);
    for component in rel.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("is absolute; it must be relative to the source"))
            }
            Component::ParentDir => return Err(refuse("has `..`; it must stay in the source")),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    let dir = root.join(rel);
    if !dir.is_dir() {
        return Err(missing_project(root, project));
    }
    // A local app folder may hold a symlink pointing anywhere; the build must not leave it.
    let (real_root, real_dir) = (root.canonicalize().at(root)?, dir.canonicalize().at(&dir)?);
    if !real_dir.starts_with(&real_root) {
        return Err(refuse("leaves the source through a symlink"));
    }
    Ok(dir)
}

/// The error for a `project` that is not there, listing the sub-folders of the deepest
/// folder that exists on the way.
fn missing_project(root: &Path, project: &str) -> FetchError {
    let mut parent = PathBuf::new();
    for component in Path::new(project).components() {
        let next = parent.join(component);
        if !root.join(&next).is_dir() {
            break;
        }
        parent = next;
    }
    let mut available: Vec<String> = std::fs::read_dir(root.join(&parent))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    available.sort();
    FetchError::ProjectMissing {
        project: project.to_owned(),
        parent,
        available,
    }
}

/// How [`copy_bounded`] stopped early.
enum CopyError {
    /// Reading failed: a broken connection, a corrupt archive.
    Read(std::io::Error),
    /// Writing failed: the disk.
    Write(std::io::Error),
    /// More than the limit came.
    Limit,
}

/// Copy `from` into `to`, refusing more than `limit` bytes; how many were copied. Read and
/// write errors stay apart: only the first may be worth a retry.
fn copy_bounded(from: &mut dyn Read, to: &mut dyn Write, limit: u64) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut copied = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        copied += n as u64;
        if copied > limit {
            return Err(CopyError::Limit);
        }
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

fn checksum_digest(url: &str, hex: &str) -> Result<Digest, FetchError> {
    Digest::from_hex(hex).map_err(|_| FetchError::InvalidChecksum {
        url: url.to_owned(),
        value: hex.to_owned(),
    })
}

/// A new empty folder under `work_dir`, readable by all like the folders extracted in it.
fn temp_dir(work_dir: &Path) -> Result<tempfile::TempDir, FetchError> {
    std::fs::create_dir_all(work_dir).at(work_dir)?;
    let dir = tempfile::Builder::new()
        .prefix("source-")
        .tempdir_in(work_dir)
        .at(work_dir)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).at(dir.path())?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn config(build: &str) -> NuaConfig {
        let text =
            format!("[metadata]\nid = \"x\"\nversion = \"1.0\"\nrelease = 1\n[build]\n{build}");
        let file = Path::new("nua-config.toml");
        let opts = nua_config::LoadOptions::default();
        nua_config::load_str(&text, nua_config::Format::Toml, file, &opts)
            .unwrap()
            .0
    }

    #[test]
    fn origin_of_a_config() {
        assert_eq!(Origin::of(&config("")), Origin::Local);
        let hex = "ab".repeat(32);
        let both = config(&format!(
            "src-url = \"https://h/x-{{version}}.tar.gz\"\nsrc-checksum = \"sha256:{}\"\ngit-url = \"https://h/r.git\"",
            hex.to_uppercase()
        ));
        let expected = Origin::Url {
            url: "https://h/x-1.0.tar.gz".into(),
            checksum: Some(hex.clone()),
        };
        assert_eq!(Origin::of(&both), expected);
        assert_eq!(pin(&expected).unwrap(), Some(format!("sha256:{hex}")));
        let git = config("git-url = \"https://h/r.git\"\ngit-branch = \"v{version}\"");
        let expected = Origin::Git {
            url: "https://h/r.git".into(),
            branch: Some("v1.0".into()),
        };
        assert_eq!(Origin::of(&git), expected);
    }

    #[test]
    fn project_dir_refuses_what_leaves_or_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("src");
        fs::create_dir_all(root.join("apps/web")).unwrap();
        fs::create_dir_all(root.join("docs")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("escape")).unwrap();
        assert_eq!(project_dir(&root, None).unwrap(), root);
        assert_eq!(
            project_dir(&root, Some("apps/web")).unwrap(),
            root.join("apps/web")
        );
        for (bad, why) in [
            ("/etc", "is absolute"),
            ("../src", "has `..`"),
            ("apps/../docs", "has `..`"),
            ("escape", "through a symlink"),
        ] {
            let err = project_dir(&root, Some(bad)).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(bad), "{bad}: {err}");
        }
        let err = project_dir(&root, Some("apps/api"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`apps/api` is not a folder"), "{err}");
        assert!(err.contains("`apps` has: `web`"), "{err}");
        let err = project_dir(&root, Some("server")).unwrap_err().to_string();
        assert!(
            err.contains("the source has: `apps`, `docs`, `escape`"),
            "{err}"
        );
    }

    #[test]
    fn an_archive_in_the_store_needs_no_network_and_a_failure_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path().join("store")).unwrap();
        let work = tmp.path().join("work");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        tar.append_data(&mut header, "top/ok.txt", &b"ok"[..])
            .unwrap();
        let good = store.put_bytes(&tar.into_inner().unwrap()).unwrap().digest;
        // Nothing listens on port 9: only the store can answer.
        let origin = |digest: &Digest| Origin::Url {
            url: "http://127.0.0.1:9/never.tar".into(),
            checksum: Some(digest.hex().to_owned()),
        };
        let fetched = fetch(&origin(&good), &work, &store).unwrap();
        assert_eq!(fetched.identity(), good.to_string());
        assert_eq!(
            fs::read_to_string(fetched.root().join("ok.txt")).unwrap(),
            "ok"
        );
        let root = fetched.root().to_path_buf();
        drop(fetched);
        assert!(!root.exists());

        let bad = store.put_bytes(b"<html>not found</html>").unwrap().digest;
        let err = fetch(&origin(&bad), &work, &store).unwrap_err();
        assert!(matches!(err, FetchError::UnsupportedFormat { .. }), "{err}");
        assert_eq!(fs::read_dir(&work).unwrap().count(), 0);
        assert!(matches!(
            fetch(&Origin::Local, &work, &store),
            Err(FetchError::NothingToFetch)
        ));

        // Damaged on disk: not trusted, moved aside, and fetched again (here the server is
        // gone, so the fetch fails, asking the network rather than extracting bad bytes).
        let stored = store.path(&good);
        let mut bytes = fs::read(&stored).unwrap();
        bytes[600] ^= 1;
        fs::write(&stored, bytes).unwrap();
        let err = fetch(&origin(&good), &work, &store).unwrap_err();
        assert!(matches!(err, FetchError::Download { .. }), "{err}");
        assert!(!store.contains(&good));
        assert_eq!(store.quarantined().unwrap().len(), 1);
    }

    /// Issue 13: a name the file system cannot hold is a refused entry with its name cut
    /// short, not a bare "File name too long" quoting the whole path; nothing is kept.
    #[test]
    fn a_name_too_long_for_the_file_system_is_a_refused_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path().join("store")).unwrap();
        let work = tmp.path().join("work");
        let deep = format!("top/{}x", format!("{}/", "b".repeat(250)).repeat(20));
        let long_component = format!("top/{}", "a".repeat(5000));
        for (name, why) in [
            (long_component, "a component of 5000 bytes"),
            (deep, "bytes with the source folder"),
        ] {
            let mut tar = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_size(2);
            header.set_mode(0o644);
            // A well-formed entry first: it must not be kept either.
            tar.append_data(&mut header.clone(), "top/ok.txt", &b"ok"[..])
                .unwrap();
            // The GNU long name extension carries the name whole.
            tar.append_data(&mut header, &name, &b"no"[..]).unwrap();
            let digest = store.put_bytes(&tar.into_inner().unwrap()).unwrap().digest;
            let origin = Origin::Url {
                url: "http://127.0.0.1:9/long.tar".into(),
                checksum: Some(digest.hex().to_owned()),
            };
            let err = fetch(&origin, &work, &store).unwrap_err();
            assert!(matches!(err, FetchError::Hostile { .. }), "{err}");
            let message = err.to_string();
            let shown = format!("refusing entry `{}… ({} bytes)`", &name[..100], name.len());
            assert!(message.contains(&shown), "{message}");
            assert!(message.contains(why), "{message}");
            assert!(message.len() < 600, "the name is cut short: {message}");
            assert_eq!(fs::read_dir(&work).unwrap().count(), 0, "{name:.20}");
        }
    }
}
