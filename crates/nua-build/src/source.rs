//! Which files of an app folder make its source: everything but what `.nuaignore` and
//! `.dockerignore` exclude (gitignore syntax, read with the `ignore` crate), version control
//! folders, and the files that describe the build rather than the app.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::Error;

/// Files at the root of an app folder that steer the build and never reach `/nua/app`.
const BUILD_INPUTS: &[&str] = &[
    "nua-config.toml",
    "nua-config.json",
    "nua-config.yaml",
    "nua-config.yml",
    ".nuaignore",
    ".dockerignore",
];

/// Folders never copied, at any depth.
const NEVER: &[&str] = &[".git", ".hg", ".svn"];

/// Whether `rel` (relative to the app root) steers the build without being part of the
/// source: a nua-config or an ignore file at the root, or anything under `nua/`.
pub fn is_build_input(rel: &Path) -> bool {
    let mut components = rel.components();
    let Some(first) = components.next().and_then(|c| c.as_os_str().to_str()) else {
        return false;
    };
    first == "nua" || (components.next().is_none() && BUILD_INPUTS.contains(&first))
}

/// Decides, for a path relative to the app root, whether it belongs to the app's source.
pub struct SourceFilter {
    ignore: Gitignore,
    /// Paths relative to the root never included, such as the image being written when the
    /// output lands inside the app folder (else each build would pack the previous image).
    excluded: Vec<PathBuf>,
}

impl SourceFilter {
    /// Read the ignore files of `root`. Both are honoured when both exist, `.nuaignore` last
    /// so that its `!pattern` lines can take back what `.dockerignore` excluded.
    pub fn new(root: &Path) -> Result<Self, Error> {
        let mut builder = GitignoreBuilder::new(root);
        for name in [".dockerignore", ".nuaignore"] {
            let path = root.join(name);
            if path.is_file() {
                if let Some(err) = builder.add(&path) {
                    return Err(Error::Ignore { path, source: err });
                }
            }
        }
        let ignore = builder.build().map_err(|source| Error::Ignore {
            path: root.join(".nuaignore"),
            source,
        })?;
        Ok(Self {
            ignore,
            excluded: Vec::new(),
        })
    }

    /// Also leave out `path` (absolute, or relative to the working folder) when it lies
    /// under `root`.
    pub fn excluding(mut self, root: &Path, path: &Path) -> Self {
        let absolute = |p: &Path| std::path::absolute(p).ok();
        let canonical_root = fs_err::canonicalize(root).ok().or_else(|| absolute(root));
        // The output may not exist yet: resolve its folder, keep its name.
        let resolved = path.parent().and_then(|parent| {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let parent = fs_err::canonicalize(parent).ok()?;
            Some(parent.join(path.file_name()?))
        });
        if let (Some(root), Some(path)) = (canonical_root, resolved) {
            if let Ok(rel) = path.strip_prefix(&root) {
                self.excluded.push(rel.to_path_buf());
            }
        }
        self
    }

    /// Whether `rel` (relative to the app root, no leading `/`) is part of the source.
    pub fn includes(&self, rel: &Path, is_dir: bool) -> bool {
        if rel.as_os_str().is_empty() {
            return true;
        }
        let mut components = rel.components();
        let first = components.next().map(|c| c.as_os_str());
        let top_level = components.next().is_none();
        if top_level {
            let name = first.and_then(|n| n.to_str()).unwrap_or_default();
            if BUILD_INPUTS.contains(&name) && !is_dir {
                return false;
            }
            // `<root>/nua/` holds the nua-config and files merged into `/nua/`, not app files.
            if name == "nua" && is_dir {
                return false;
            }
            // Images built here before (`nua-<id>_<version>.tar`, the default output), and
            // one being written by a build running now: never the app's.
            let image = name.starts_with("nua-") && name.contains('_') && name.ends_with(".tar");
            let being_written = name.starts_with(".nua-") && name.ends_with(".tmp");
            if !is_dir && (image || being_written) {
                return false;
            }
        }
        if rel
            .components()
            .any(|c| NEVER.iter().any(|n| c.as_os_str() == *n))
            || self.excluded.iter().any(|e| e == rel)
        {
            return false;
        }
        !self
            .ignore
            .matched_path_or_any_parents(rel, is_dir)
            .is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn filter_with(
        nuaignore: &str,
        dockerignore: Option<&str>,
    ) -> (tempfile::TempDir, SourceFilter) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".nuaignore"), nuaignore).unwrap();
        if let Some(text) = dockerignore {
            std::fs::write(dir.path().join(".dockerignore"), text).unwrap();
        }
        let filter = SourceFilter::new(dir.path()).unwrap();
        (dir, filter)
    }

    #[rstest]
    #[case("index.html", false, true)]
    #[case("nua-config.toml", false, false)]
    #[case("docs/nua-config.toml", false, true)]
    #[case(".nuaignore", false, false)]
    #[case("nua", true, false)]
    #[case("lib/nua", true, true)]
    #[case(".git", true, false)]
    #[case("vendor/x/.git", true, false)]
    #[case("notes.swp", false, false)]
    #[case("drafts", true, false)]
    #[case("drafts/a.html", false, false)]
    #[case("sub/drafts", true, true)]
    #[case("keep.swp", false, true)]
    #[case("nua-static-site_1.0-1.tar", false, false)]
    #[case(".nua-static-site_1.0-1.tar.Ab12Cd.tmp", false, false)]
    #[case("assets/nua-logo_big.tar", false, true)]
    #[case("backup.tar", false, true)]
    fn decides(#[case] rel: &str, #[case] is_dir: bool, #[case] included: bool) {
        let (_dir, filter) = filter_with("*.swp\n/drafts/\n!keep.swp\n", None);
        assert_eq!(filter.includes(Path::new(rel), is_dir), included, "{rel}");
    }

    #[test]
    fn the_output_inside_the_app_folder_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dist/app.tar");
        std::fs::create_dir(dir.path().join("dist")).unwrap();
        let filter = SourceFilter::new(dir.path())
            .unwrap()
            .excluding(dir.path(), &out);
        assert!(!filter.includes(Path::new("dist/app.tar"), false));
        assert!(filter.includes(Path::new("dist/other.tar"), false));
        let elsewhere = tempfile::tempdir().unwrap();
        let filter = SourceFilter::new(dir.path())
            .unwrap()
            .excluding(dir.path(), &elsewhere.path().join("app.tar"));
        assert!(filter.includes(Path::new("app.tar"), false));
    }

    #[test]
    fn nuaignore_can_take_back_what_dockerignore_excluded() {
        let (_dir, filter) = filter_with("!build/keep.txt\n", Some("build/*\n"));
        assert!(!filter.includes(Path::new("build/other.txt"), false));
        assert!(filter.includes(Path::new("build/keep.txt"), false));
    }
}
