//! Writing archive entries into the source folder without ever writing outside it.
//!
//! The folder is a fresh temporary one that only this writer touches, so checking what is on
//! disk before each write is race-free. The rules, each an error naming the entry (an
//! archive that needs one of these is broken or malicious, and skipping would build
//! something else than what the author packed):
//!
//! - a name that is absolute or has a `..` component is refused;
//! - a name whose parent folder is a symlink (a write *through* a link) is refused;
//! - a symlink target that is absolute, or climbs above the source folder, or has a `..`
//!   after a folder name (`a/..`: if `a` is itself a link, the kernel climbs from wherever it
//!   points, so the target cannot be checked from its text) is refused;
//! - a hard link must name a regular file already extracted (a hard link to a symlink would
//!   move the link and change what its relative target means).
//!
//! The first path component is stripped, like `tar --strip-components=1`: archives of
//! `hello-1.0/...` land at the root. An entry with a single component is the top folder
//! itself when it is a folder (skipped: the root exists) and is kept at the root under its
//! own name otherwise (a `README` next to the top folder is not lost). Hard link targets are
//! stripped the same way; symlink targets are relative to their link and kept as written.
//!
//! A name the file system cannot hold (a component over `NAME_MAX`, a path over `PATH_MAX`)
//! is refused the same way, before anything is written for it. Device nodes, fifos and
//! sockets have no place in a source tree: nothing is written for them, and each is listed
//! in [`Tree::warnings`].
//!
//! Ownership is never taken from the archive (files belong to whoever runs the build) and
//! modes are reduced to `0o755` for folders and executables and `0o644` for other files: no
//! setuid, no group or world write.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{FetchError, IoContext};
use super::{copy_bounded, CopyError};
use nua_oci::error::printable;
use nua_oci::layer::normalize;

/// How many bytes all extracted files may hold together: a decompression bomb stops here.
pub(super) const MAX_EXTRACTED: u64 = 16 << 30;

/// Longest file name component Linux file systems take (`NAME_MAX`).
const NAME_MAX: usize = libc::NAME_MAX as usize;

/// Longest path a system call takes, its final NUL included (`PATH_MAX`).
const PATH_MAX: usize = libc::PATH_MAX as usize;

/// Entry names longer than this many characters are shortened in messages.
const SHOWN_CHARS: usize = 100;

/// Skipped entries named in the warning; the others are counted.
const SKIPPED_SHOWN: usize = 5;

/// The source folder being filled from one archive.
pub(super) struct Tree<'a> {
    root: &'a Path,
    url: &'a str,
    written: u64,
    /// Entries not extracted, for the warning: their name and what they are.
    skipped: Vec<(String, &'static str)>,
}

impl<'a> Tree<'a> {
    pub(super) fn new(root: &'a Path, url: &'a str) -> Tree<'a> {
        Tree {
            root,
            url,
            written: 0,
            skipped: Vec::new(),
        }
    }

    /// The URL of the archive, for messages.
    pub(super) fn url(&self) -> &'a str {
        self.url
    }

    pub(super) fn hostile(&self, entry: &[u8], reason: impl Into<String>) -> FetchError {
        FetchError::Hostile {
            url: self.url.to_owned(),
            entry: shown(entry),
            reason: reason.into(),
        }
    }

    /// Leave out entry `raw`, `what` it is (`"a fifo"`), from the tree: it has no place in a
    /// source (a device node, a fifo, a socket). Listed in [`Tree::warnings`].
    pub(super) fn skip(&mut self, raw: &[u8], what: &'static str) {
        self.skipped.push((shown(raw), what));
    }

    /// What the user should hear about this archive besides an error: the entries skipped.
    pub(super) fn warnings(&self) -> Vec<String> {
        if self.skipped.is_empty() {
            return Vec::new();
        }
        let mut named: Vec<String> = (self.skipped.iter().take(SKIPPED_SHOWN))
            .map(|(entry, what)| format!("`{entry}` ({what})"))
            .collect();
        if self.skipped.len() > SKIPPED_SHOWN {
            named.push(format!("and {} more", self.skipped.len() - SKIPPED_SHOWN));
        }
        vec![format!(
            "the source archive `{}` has {} device node(s), fifo(s) or socket(s), not extracted: {}",
            super::redact(self.url),
            self.skipped.len(),
            named.join(", ")
        )]
    }

    /// Where entry `raw` goes, relative to the root, once normalized and stripped of its
    /// first component (see the module doc); `None` for the root itself.
    pub(super) fn destination(
        &self,
        raw: &[u8],
        is_dir: bool,
    ) -> Result<Option<PathBuf>, FetchError> {
        let normalized = normalize(raw, false)
            .map_err(|_| self.hostile(raw, "absolute paths and `..` leave the source folder"))?;
        let Some(normalized) = normalized else {
            return Ok(None);
        };
        let stripped = match normalized.iter().position(|&b| b == b'/') {
            Some(slash) => &normalized[slash + 1..],
            None if is_dir => return Ok(None),
            None => &normalized[..],
        };
        self.check_length(raw, stripped)?;
        Ok(Some(PathBuf::from(OsStr::from_bytes(stripped))))
    }

    /// Refuse a name the file system cannot hold: else its write fails with a bare
    /// "File name too long" that quotes the whole path.
    fn check_length(&self, raw: &[u8], rel: &[u8]) -> Result<(), FetchError> {
        let longest = rel.split(|&b| b == b'/').map(<[u8]>::len).max();
        let too_long = |what| {
            self.hostile(
                raw,
                format!(
                    "its name is longer than the file system allows ({what}; at most \
                     {NAME_MAX} bytes per component and {} in all)",
                    PATH_MAX - 1
                ),
            )
        };
        if let Some(longest) = longest.filter(|&n| n > NAME_MAX) {
            return Err(too_long(format!("a component of {longest} bytes")));
        }
        // The path the system calls get: the root, a slash, the name, and a NUL.
        let full = self.root.as_os_str().len() + 1 + rel.len();
        if full >= PATH_MAX {
            return Err(too_long(format!("{full} bytes with the source folder")));
        }
        Ok(())
    }

    pub(super) fn dir(&mut self, raw: &[u8], rel: &Path) -> Result<(), FetchError> {
        let path = self.prepare(raw, rel)?;
        match fs::symlink_metadata(&path) {
            Ok(md) if md.is_dir() => {}
            _ => {
                remove(&path)?;
                fs::create_dir(&path).at(&path)?;
            }
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).at(&path)
    }

    /// A regular file with `mode`'s executable bit and `content`.
    pub(super) fn file(
        &mut self,
        raw: &[u8],
        rel: &Path,
        mode: u32,
        content: &mut dyn Read,
    ) -> Result<(), FetchError> {
        let path = self.prepare(raw, rel)?;
        remove(&path)?;
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        // O_NOFOLLOW and create_new: whatever was there is gone, nothing is followed.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .at(&path)?;
        match copy_bounded(content, &mut file, MAX_EXTRACTED - self.written) {
            Ok(n) => self.written += n,
            Err(CopyError::Read(source)) => {
                return Err(FetchError::Archive {
                    url: self.url.to_owned(),
                    source,
                })
            }
            Err(CopyError::Write(source)) => return Err(source).at(&path),
            Err(CopyError::Limit) => {
                return Err(self.hostile(
                    raw,
                    format!("the archive expands to more than {MAX_EXTRACTED} bytes"),
                ))
            }
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .at(&path)
    }

    pub(super) fn symlink(
        &mut self,
        raw: &[u8],
        rel: &Path,
        target: &[u8],
    ) -> Result<(), FetchError> {
        let depth = rel.components().count() - 1;
        check_link_target(target, depth).map_err(|reason| {
            let shown = shown(target);
            self.hostile(raw, format!("symlink to `{shown}`: {reason}"))
        })?;
        let path = self.prepare(raw, rel)?;
        remove(&path)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).at(&path)
    }

    /// A hard link to `target_raw`, an entry name of the same archive.
    pub(super) fn hard_link(
        &mut self,
        raw: &[u8],
        rel: &Path,
        target_raw: &[u8],
    ) -> Result<(), FetchError> {
        let shown = shown(target_raw);
        let target = self
            .destination(target_raw, false)
            .ok()
            .flatten()
            .ok_or_else(|| {
                self.hostile(
                    raw,
                    format!("hard link to `{shown}` leaves the source folder"),
                )
            })?;
        let target = self.prepare(raw, &target)?;
        let is_file = fs::symlink_metadata(&target).is_ok_and(|md| md.is_file());
        if !is_file {
            return Err(self.hostile(
                raw,
                format!("hard link to `{shown}`, which is not a file extracted before it"),
            ));
        }
        let path = self.prepare(raw, rel)?;
        remove(&path)?;
        // linkat without AT_SYMLINK_FOLLOW: the last component is never followed.
        fs::hard_link(&target, &path).at(&path)
    }

    /// The absolute path of `rel`, its parent folders created; refuses a parent that is a
    /// symlink or a file.
    fn prepare(&self, raw: &[u8], rel: &Path) -> Result<PathBuf, FetchError> {
        let mut path = self.root.to_path_buf();
        let mut components = rel.components().peekable();
        while let Some(component) = components.next() {
            path.push(component);
            if components.peek().is_none() {
                break;
            }
            match fs::symlink_metadata(&path) {
                Ok(md) if md.is_dir() => {}
                Ok(md) if md.file_type().is_symlink() => {
                    return Err(self.hostile(raw, "it would be written through a symlink"))
                }
                Ok(_) => return Err(self.hostile(raw, "a parent of it is a file")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).at(&path)?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).at(&path)?;
                }
                Err(e) => return Err(e).at(&path),
            }
        }
        Ok(path)
    }
}

/// Remove what is at `path` (a later entry replaces an earlier one, as with `tar`); never
/// follows a symlink.
fn remove(path: &Path) -> Result<(), FetchError> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path).at(path),
        Ok(_) => fs::remove_file(path).at(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// An entry name for a message: printable, and a very long one cut to its first
/// characters and its length.
fn shown(raw: &[u8]) -> String {
    let text = printable(raw);
    if text.chars().count() <= SHOWN_CHARS {
        return text;
    }
    let head: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{head}… ({} bytes)", raw.len())
}

/// Whether a symlink at `depth` folders below the root, pointing at `target`, stays inside:
/// relative, `..` only before the first folder name, never more of them than `depth`.
fn check_link_target(target: &[u8], depth: usize) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("an empty target");
    }
    if target.len() >= PATH_MAX {
        return Err("a target longer than the file system allows");
    }
    if target.starts_with(b"/") {
        return Err("absolute targets leave the source folder");
    }
    let mut up = 0;
    let mut named = false;
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if named => return Err("`..` after a folder name cannot be checked"),
            b".." => up += 1,
            _ => named = true,
        }
    }
    if up > depth {
        return Err("it climbs above the source folder");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tar::EntryType as T;

    use super::super::testing::{dir, extract_bytes, file, hello, hostile_entry, link, tar_of};
    use super::*;

    #[test]
    fn link_targets() {
        assert!(check_link_target(b"x", 0).is_ok());
        assert!(check_link_target(b"./bin/x", 0).is_ok());
        assert!(check_link_target(b"../lib/x", 1).is_ok());
        assert!(check_link_target(b"../../x", 2).is_ok());
        assert!(check_link_target(b"..", 1).is_ok());
        assert!(check_link_target(b"../x", 0).is_err());
        assert!(check_link_target(b"../../x", 1).is_err());
        assert!(check_link_target(b"/etc/passwd", 5).is_err());
        assert!(check_link_target(b"a/../x", 3).is_err());
        assert!(check_link_target(b"", 0).is_err());
        assert!(check_link_target(&[b'a'; 4096], 0).is_err());
    }

    #[test]
    fn strip_rule() {
        let root = Path::new("/nowhere");
        let tree = Tree::new(root, "test");
        let dest = |raw: &str, dir| tree.destination(raw.as_bytes(), dir).unwrap();
        assert_eq!(dest("hello-1.0/", true), None);
        assert_eq!(dest("./hello-1.0", true), None);
        assert_eq!(dest("./", true), None);
        assert_eq!(
            dest("hello-1.0/a/b.txt", false),
            Some(PathBuf::from("a/b.txt"))
        );
        assert_eq!(dest("./hello-1.0/a/", true), Some(PathBuf::from("a")));
        assert_eq!(dest("README", false), Some(PathBuf::from("README")));
        for bad in ["../x", "/etc/x", "a/../../x"] {
            let err = tree.destination(bad.as_bytes(), false).unwrap_err();
            assert!(matches!(err, FetchError::Hostile { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn strips_the_top_folder_and_reduces_modes() {
        let (tmp, result) = extract_bytes(&hello());
        result.unwrap();
        let root = tmp.path().join("root");
        let mode = |p: &str| {
            fs::symlink_metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(
            fs::read_to_string(root.join("index.html")).unwrap(),
            "<h1>hi</h1>"
        );
        assert_eq!(
            fs::read_to_string(root.join("copy.html")).unwrap(),
            "<h1>hi</h1>"
        );
        assert_eq!(
            fs::read_to_string(root.join("README")).unwrap(),
            "top level"
        );
        assert_eq!(
            fs::read_link(root.join("bin/start")).unwrap(),
            Path::new("run")
        );
        assert_eq!(mode("bin/run"), 0o755);
        assert_eq!(mode("index.html"), 0o644);
        assert_eq!(mode("bin"), 0o755);
        assert!(!root.join("dev-null").exists());
        assert!(!root.join("hello-1.0").exists());
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in ["../x", "/etc/x", "top/../../x"] {
            let reason = hostile_entry(&tar_of(&[file(name, "pwned")]));
            assert!(reason.starts_with(name), "{reason}");
        }
    }

    #[test]
    fn links_that_leave_the_tree_are_refused() {
        let cases = [
            (vec![link("top/etc", T::Symlink, "/etc")], "top/etc"),
            (vec![link("top/a/up", T::Symlink, "../../x")], "top/a/up"),
            (
                vec![
                    link("top/a", T::Symlink, "."),
                    link("top/b", T::Symlink, "a/.."),
                ],
                "top/b",
            ),
            (vec![link("top/hard", T::Link, "../outside")], "top/hard"),
            (vec![link("top/hard", T::Link, "/etc/passwd")], "top/hard"),
            (vec![link("top/hard", T::Link, "top/missing")], "top/hard"),
            (
                vec![
                    link("top/d/l", T::Symlink, "../x"),
                    link("top/h", T::Link, "top/d/l"),
                ],
                "top/h",
            ),
        ];
        for (entries, bad) in cases {
            let reason = hostile_entry(&tar_of(&entries));
            assert!(reason.starts_with(bad), "{bad}: {reason}");
        }
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().display().to_string();
        // Even a link that passed (its target is inside) is never written through.
        let entries = [
            link("top/inside", T::Symlink, "sub"),
            dir("top/sub/"),
            file("top/inside/x", "through"),
        ];
        assert!(hostile_entry(&tar_of(&entries)).contains("through a symlink"));
        let entries = [
            link("top/out", T::Symlink, &outside),
            file("top/out/x", "pwned"),
        ];
        hostile_entry(&tar_of(&entries));
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_later_entry_replaces_a_symlink_instead_of_following_it() {
        // `top/l -> x` is inside; a file entry `top/l` must replace the link, not write `x`.
        let entries = [
            file("top/x", "x"),
            link("top/l", T::Symlink, "x"),
            file("top/l", "new"),
        ];
        let (dir, result) = extract_bytes(&tar_of(&entries));
        result.unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("root/x")).unwrap(), "x");
        assert_eq!(
            fs::read_to_string(dir.path().join("root/l")).unwrap(),
            "new"
        );
    }
}
