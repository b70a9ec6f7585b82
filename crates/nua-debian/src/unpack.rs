//! Unpack `.deb` files from the blob store into ONE image layer, with the dpkg database
//! that makes them "unpacked" packages for `dpkg --configure -a` to finish.
//!
//! - Packages go in the order given (sorted by name by the resolver), each `.deb` streamed:
//!   the layer bytes depend only on the packages and the options.
//! - Merged /usr: on a fresh root `bin`, `sbin`, `lib` (and `lib64` where the ABI needs it)
//!   are symlinks into `usr/`, written first; entries under them are written at their `usr/`
//!   place, as dpkg does when it follows those symlinks (the `.list` files keep the package's
//!   own names). bookworm's `usr-is-merged` refuses a root that is not merged.
//! - An entry with a `..` component, an absolute path, a path through a symlink that a
//!   package shipped, a hard link to something not in the layer, or a device node is refused
//!   with an error naming the package and the entry.
//! - A directory shipped by several packages is written once (the first time); a file already
//!   written by an earlier package is kept (dpkg would need `Replaces` to overwrite it).
//! - Conffiles are written as `<path>.dpkg-new`, as dpkg leaves a fresh unpacked package, so
//!   configuring moves them into place.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use nua_oci::{self as oci, BlobStore, LayerOptions, LayerWriter, Meta};

use super::deb::{self, Part};
use super::deb822::{self, Paragraph};
use super::download::package_digest;
use super::dpkg_db;
use super::error::{Error, Result};
use super::resolve::Locked;
use super::source::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    /// A merged-/usr symlink of the skeleton: paths under it are rewritten, not refused.
    Merged,
}

/// Write the layer (see the module doc). `installed_status` is the status file of the root
/// below (None: a fresh bootstrap, which also gets the dpkg skeleton, the merged-/usr
/// symlinks and `/etc/apt/sources.list.d/debian.sources` naming `source`).
pub fn unpack_layer(
    pkgs: &[Locked],
    store: &BlobStore,
    installed_status: Option<&[u8]>,
    source: &Source,
    opts: &LayerOptions,
) -> Result<oci::Layer> {
    let mut u = Unpacker {
        layer: LayerWriter::new(store, *opts)?,
        written: HashMap::new(),
        merged: merged_dirs(&source.arch),
    };
    let fresh = installed_status.is_none();
    // A root below was bootstrapped here, so it is merged too: its `bin` is a symlink that
    // an entry of this layer must not replace with a folder.
    for dir in u.merged.clone() {
        u.written.insert(dir.to_owned(), Kind::Merged);
    }
    if fresh {
        for dir in u.merged.clone() {
            u.dir(&format!("usr/{dir}"), &Meta::new(0o755))?;
        }
        for dir in u.merged.clone() {
            u.layer
                .add_symlink(dir, &format!("usr/{dir}"), &Meta::new(0o777))?;
        }
        for dir in dpkg_db::SKELETON_DIRS {
            u.dir(dir, &Meta::new(0o755))?;
        }
    }
    let mut stanzas = Vec::new();
    for pkg in pkgs {
        stanzas.push(u.package(pkg, store)?);
    }
    let status = dpkg_db::status_file(installed_status, stanzas)?;
    u.generated("var/lib/dpkg/status", status.as_bytes())?;
    if fresh {
        for (path, content) in dpkg_db::skeleton_files(&source.arch) {
            u.generated(&path, &content)?;
        }
        let sources = source.apt_sources();
        u.generated("etc/apt/sources.list.d/debian.sources", sources.as_bytes())?;
    }
    Ok(u.layer.finish()?)
}

/// Top-level folders that merged /usr turns into symlinks for `arch`.
fn merged_dirs(arch: &str) -> Vec<&'static str> {
    let mut dirs = vec!["bin", "lib", "sbin"];
    if matches!(arch, "amd64" | "ppc64el" | "s390x" | "loong64" | "mips64el") {
        dirs.push("lib64");
    }
    dirs
}

struct Unpacker {
    layer: LayerWriter,
    written: HashMap<String, Kind>,
    merged: Vec<&'static str>,
}

impl Unpacker {
    /// Unpack one package; its status stanza.
    fn package(&mut self, pkg: &Locked, store: &BlobStore) -> Result<Paragraph> {
        let digest = package_digest(pkg)?;
        if !store.contains(&digest) {
            return Err(Error::NotDownloaded {
                package: pkg.name.clone(),
            });
        }
        let blob = store.open_blob(&digest)?;
        let mut control = None;
        let mut list = Vec::new();
        deb::walk(blob, &pkg.name, |part, stream| match part {
            Part::Control => {
                control = Some(deb::read_control(stream, &pkg.name)?);
                Ok(())
            }
            Part::Data => {
                let files = control.as_ref().expect("walk checks control comes first");
                let conffiles: HashSet<String> =
                    dpkg_db::conffiles(files.get("conffiles").map(Vec::as_slice))
                        .into_iter()
                        .collect();
                self.data(stream, &pkg.name, &conffiles, &mut list)
            }
        })?;
        let files = control.expect("walk checks both parts are there");
        let text = String::from_utf8_lossy(&files["control"]);
        let para = deb822::parse(&text, &format!("{} control", pkg.name))?
            .into_iter()
            .next()
            .filter(|p| p.get("Package") == Some(pkg.name.as_str()))
            .ok_or_else(|| Error::Deb {
                package: pkg.name.clone(),
                reason: "its control file names another package".to_owned(),
            })?;
        let key = dpkg_db::info_key(&para);
        for (member, content) in &files {
            if let Some(mode) = dpkg_db::info_mode(member) {
                self.generated_mode(&format!("var/lib/dpkg/info/{key}.{member}"), mode, content)?;
            }
        }
        let list = dpkg_db::list_file(&list);
        self.generated(&format!("var/lib/dpkg/info/{key}.list"), list.as_bytes())?;
        let conffiles = dpkg_db::conffiles(files.get("conffiles").map(Vec::as_slice));
        Ok(dpkg_db::unpacked_stanza(&para, &conffiles))
    }

    fn data(
        &mut self,
        stream: &mut dyn Read,
        package: &str,
        conffiles: &HashSet<String>,
        list: &mut Vec<String>,
    ) -> Result<()> {
        let mut archive = tar::Archive::new(stream);
        for entry in archive.entries().map_err(bad_tar(package))? {
            let mut entry = entry.map_err(bad_tar(package))?;
            self.data_entry(&mut entry, package, conffiles, list)?;
        }
        Ok(())
    }

    /// One entry of a package's `data.tar`, added to the layer at its merged-/usr path
    /// (a conffile as `<path>.dpkg-new`) unless an earlier package wrote that path.
    fn data_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        package: &str,
        conffiles: &HashSet<String>,
        list: &mut Vec<String>,
    ) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let unsafe_entry = |reason| Error::UnsafeEntry {
            package: package.to_owned(),
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason,
        };
        let Some(original) = clean(&raw).map_err(unsafe_entry)? else {
            return Ok(());
        };
        list.push(original.clone());
        let path = self.rewrite(&original);
        let through_symlink = path
            .match_indices('/')
            .any(|(i, _)| self.written.get(&path[..i]) == Some(&Kind::Symlink));
        if through_symlink {
            return Err(unsafe_entry(
                "its path goes through a symlink a package shipped",
            ));
        }
        let h = entry.header();
        let meta = Meta {
            mode: h.mode().map_err(bad_tar(package))? & 0o7777,
            uid: h.uid().map_err(bad_tar(package))? as u32,
            gid: h.gid().map_err(bad_tar(package))? as u32,
            mtime: h.mtime().ok(),
            xattrs: Default::default(),
        };
        let kind = h.entry_type();
        if self.written.get(&path) == Some(&Kind::Merged) {
            // trixie's base-files ships the merged-/usr symlinks itself: the same link
            // is no change.
            if kind.is_dir() || same_link(entry, &path) {
                return Ok(());
            }
            return Err(unsafe_entry("it would replace a merged-/usr symlink"));
        }
        if kind.is_dir() {
            if !self.written.contains_key(&path) {
                self.dir(&path, &meta)?;
            }
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let target = if conffiles.contains(&format!("/{original}")) {
                format!("{path}.dpkg-new")
            } else {
                path
            };
            if !self.written.contains_key(&target) {
                self.parents(&target)?;
                let size = entry.size();
                self.layer.add_file(&target, &meta, size, entry)?;
                self.written.insert(target, Kind::File);
            }
        } else if kind.is_symlink() {
            self.symlink(entry, path, &meta, &unsafe_entry)?;
        } else if kind.is_hard_link() {
            self.hard_link(entry, path, &meta, &unsafe_entry)?;
        } else {
            return Err(unsafe_entry(
                "device nodes, FIFOs and sockets are not allowed",
            ));
        }
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: String,
        meta: &Meta,
        unsafe_entry: &dyn Fn(&'static str) -> Error,
    ) -> Result<()> {
        let link = entry.link_name_bytes().unwrap_or_default();
        let link = std::str::from_utf8(&link)
            .map_err(|_| unsafe_entry("its link target is not UTF-8"))?
            .to_owned();
        if !self.written.contains_key(&path) {
            self.parents(&path)?;
            self.layer.add_symlink(&path, &link, meta)?;
            self.written.insert(path, Kind::Symlink);
        }
        Ok(())
    }

    /// A hard link, to a file of the layer.
    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: String,
        meta: &Meta,
        unsafe_entry: &dyn Fn(&'static str) -> Error,
    ) -> Result<()> {
        let link = entry.link_name_bytes().unwrap_or_default().into_owned();
        let target = clean(&link)
            .map_err(unsafe_entry)?
            .map(|t| self.rewrite(&t));
        let Some(target) = target.filter(|t| self.written.get(t) == Some(&Kind::File)) else {
            return Err(unsafe_entry("it is a hard link to a file not in the layer"));
        };
        if !self.written.contains_key(&path) {
            self.parents(&path)?;
            self.layer.add_hardlink(&path, &target, meta)?;
            self.written.insert(path, Kind::File);
        }
        Ok(())
    }

    /// The layer path of a package path under merged /usr.
    fn rewrite(&self, path: &str) -> String {
        let first = path.split('/').next().unwrap_or("");
        let under = path.len() > first.len();
        if under && self.merged.contains(&first) {
            format!("usr/{path}")
        } else {
            path.to_owned()
        }
    }

    fn dir(&mut self, path: &str, meta: &Meta) -> Result<()> {
        self.parents(path)?;
        self.layer.add_dir(path, meta)?;
        self.written.insert(path.to_owned(), Kind::Dir);
        Ok(())
    }

    /// Write the missing parent folders of `path` (0755, root).
    fn parents(&mut self, path: &str) -> Result<()> {
        for (i, _) in path.match_indices('/') {
            if !self.written.contains_key(&path[..i]) {
                self.layer.add_dir(&path[..i], &Meta::new(0o755))?;
                self.written.insert(path[..i].to_owned(), Kind::Dir);
            }
        }
        Ok(())
    }

    fn generated(&mut self, path: &str, content: &[u8]) -> Result<()> {
        self.generated_mode(path, 0o644, content)
    }

    fn generated_mode(&mut self, path: &str, mode: u32, content: &[u8]) -> Result<()> {
        self.parents(path)?;
        self.layer.add_bytes(path, &Meta::new(mode), content)?;
        self.written.insert(path.to_owned(), Kind::File);
        Ok(())
    }
}

/// A failure to read a package's `data.tar`.
fn bad_tar(package: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Deb {
        package: package.to_owned(),
        reason: format!("data.tar: {e}"),
    }
}

/// Whether `entry` is a symlink to `/usr/<path>` (or `usr/<path>`): the merged-/usr link
/// the layer has at `path` already.
fn same_link<R: Read>(entry: &tar::Entry<'_, R>, path: &str) -> bool {
    entry.header().entry_type().is_symlink()
        && entry.link_name_bytes().is_some_and(|target| {
            let target = String::from_utf8_lossy(&target);
            let target = target.trim_start_matches('/');
            target == format!("usr/{path}")
        })
}

/// A package path made relative and checked: `./usr/bin/` → `usr/bin`; None for the root.
fn clean(raw: &[u8]) -> std::result::Result<Option<String>, &'static str> {
    let path = std::str::from_utf8(raw).map_err(|_| "its path is not UTF-8")?;
    let mut rest = path;
    while let Some(r) = rest.strip_prefix("./") {
        rest = r;
    }
    if rest.starts_with('/') {
        return Err("it is an absolute path");
    }
    let mut parts = Vec::new();
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("it has a `..` component"),
            c => parts.push(c),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(b"./usr/bin/").unwrap().unwrap(), "usr/bin");
        assert_eq!(clean(b"./").unwrap(), None);
        assert!(clean(b"./../etc/passwd").is_err());
        assert!(clean(b"/etc/passwd").is_err());
        assert!(clean(b"usr/../../x").is_err());
    }
}
