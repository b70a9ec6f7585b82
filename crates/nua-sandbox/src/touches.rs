//! Whether an unpacked layer may change what a root reads at some paths, told from the
//! layer's folder in the cache (a few `lstat`s) rather than by reading its archive again.

use std::io::ErrorKind;
use std::path::Path;

use super::unpack::OPAQUE_XATTRS;
use nua_oci as oci;

/// Whether stacking the layer `diff_id`, as unpacked in the sandbox cache `cache_dir`, may
/// change what is read at one of `paths` (relative to the root): it has an entry at or below
/// one of them, or above one something other than a plain folder (a file, a link, a
/// whiteout, an opaque folder). `None` when the layer is not unpacked there or a folder
/// cannot be looked at: read the layer itself then.
pub fn unpacked_touches(cache_dir: &Path, diff_id: &oci::Digest, paths: &[&str]) -> Option<bool> {
    let dir = cache_dir.join("layers").join(diff_id.hex());
    if !std::fs::symlink_metadata(&dir).ok()?.is_dir() {
        return None;
    }
    if opaque(&dir)? {
        return Some(true);
    }
    for path in paths {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut at = dir.clone();
        for (i, part) in parts.iter().enumerate() {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                // The path itself, whatever it is (a whiteout is a character device).
                Ok(_) if i + 1 == parts.len() => return Some(true),
                Ok(md) if !md.is_dir() || opaque(&at)? => return Some(true),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    break
                }
                Err(_) => return None,
            }
        }
    }
    // Removed meanwhile (a prune): what was not found may have been going.
    dir.is_dir().then_some(false)
}

/// Whether a folder is marked opaque; `None` when its attributes cannot be read.
fn opaque(dir: &Path) -> Option<bool> {
    for name in OPAQUE_XATTRS {
        match xattr::get(dir, name) {
            Ok(Some(value)) if value == b"y" => return Some(true),
            Ok(_) => {}
            // `trusted.*` is root's to read: unknown to others, not a failure.
            Err(e) if name.starts_with("trusted.") && e.kind() == ErrorKind::PermissionDenied => {}
            Err(_) => return None,
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SBOM: &[&str] = &["var/lib/dpkg/status", "nua/venv", "nua/app/node_modules"];

    /// A sandbox cache with one unpacked layer made by `make`; its DiffID.
    fn layer(make: impl FnOnce(&Path)) -> (tempfile::TempDir, oci::Digest) {
        let cache = tempfile::tempdir().unwrap();
        let digest = oci::Digest::of(b"a layer");
        let dir = cache.path().join("layers").join(digest.hex());
        std::fs::create_dir_all(&dir).unwrap();
        make(&dir);
        (cache, digest)
    }

    fn touches(make: impl FnOnce(&Path)) -> Option<bool> {
        let (cache, digest) = layer(make);
        unpacked_touches(cache.path(), &digest, SBOM)
    }

    #[test]
    fn entries_at_or_below_a_path_touch_it() {
        let status = |d: &Path| {
            std::fs::create_dir_all(d.join("var/lib/dpkg")).unwrap();
            std::fs::write(d.join("var/lib/dpkg/status"), "Package: x\n").unwrap();
        };
        assert_eq!(touches(status), Some(true));
        let venv = |d: &Path| {
            std::fs::create_dir_all(d.join("nua/venv/lib/python3.11")).unwrap();
        };
        assert_eq!(touches(venv), Some(true));
    }

    #[test]
    fn plain_folders_above_and_other_files_do_not() {
        let app = |d: &Path| {
            std::fs::create_dir_all(d.join("nua/app/static")).unwrap();
            std::fs::create_dir_all(d.join("var/lib/apt")).unwrap();
            std::fs::write(d.join("nua/app/app.py"), "print()").unwrap();
        };
        assert_eq!(touches(app), Some(false));
        assert_eq!(touches(|_| {}), Some(false));
    }

    #[test]
    fn what_replaces_or_hides_a_folder_above_touches() {
        // A file (as a whiteout would be) where a folder of the path was.
        let file = |d: &Path| {
            std::fs::create_dir_all(d.join("var/lib")).unwrap();
            std::fs::write(d.join("var/lib/dpkg"), "").unwrap();
        };
        assert_eq!(touches(file), Some(true));
        let link = |d: &Path| std::os::unix::fs::symlink("/elsewhere", d.join("nua")).unwrap();
        assert_eq!(touches(link), Some(true));
        let opaque = |d: &Path| {
            std::fs::create_dir_all(d.join("nua/app")).unwrap();
            xattr::set(d.join("nua"), OPAQUE_XATTRS[0], b"y").unwrap();
        };
        assert_eq!(touches(opaque), Some(true));
    }

    #[test]
    fn a_layer_not_unpacked_is_unknown() {
        let cache = tempfile::tempdir().unwrap();
        let digest = oci::Digest::of(b"elsewhere");
        assert_eq!(unpacked_touches(cache.path(), &digest, SBOM), None);
    }
}
