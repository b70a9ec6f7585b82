//! Find the nua-config file of an app and the app root (the folder whose tree is the source).
//!
//! - Given a folder, the config is the first `nua-config.{toml,json,yaml,yml}` of `<folder>`,
//!   `<folder>/nua`, `<folder>/nua/metadata`, and the root is always the folder given: the
//!   user said which folder the app is. A folder that holds its config directly is its own
//!   root whatever its name, so `build proj/nua` builds `proj/nua`, not `proj`.
//! - Given a file, the root is its folder, or the folder above `nua/` when the file sits in
//!   `<root>/nua/` or `<root>/nua/metadata/`: naming `proj/nua/nua-config.toml` points at the
//!   config of the app `proj` in its usual place.

use std::path::{Path, PathBuf};

use super::error::Error;
use super::layout::in_layer;
use super::parse::Format;

/// The extensions tried, in order.
pub const EXTENSIONS: &[&str] = &["toml", "json", "yaml", "yml"];

/// A config file found, its format and the app root.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub file: PathBuf,
    pub format: Format,
    pub root: PathBuf,
}

/// Find the config for `path` (a folder or a file).
pub fn find(path: &Path) -> Result<Found, Error> {
    if path.is_file() {
        let format = format_of(path).ok_or_else(|| Error::Extension {
            path: path.to_path_buf(),
        })?;
        // `nua-config.toml` alone has the empty path as parent: the current folder.
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        return Ok(Found {
            file: path.to_path_buf(),
            format,
            root: root_of(folder),
        });
    }
    if !path.is_dir() {
        return Err(Error::Missing {
            path: path.to_path_buf(),
        });
    }
    let root = path.to_path_buf();
    let mut searched = Vec::new();
    // An app may keep its config where the image will have it, under `nua/metadata/`.
    for folder in [
        root.clone(),
        root.join(in_layer::NUA_DIR),
        root.join(in_layer::METADATA_DIR),
    ] {
        let present: Vec<PathBuf> = EXTENSIONS
            .iter()
            .map(|ext| folder.join(format!("nua-config.{ext}")))
            .filter(|p| p.is_file())
            .collect();
        searched.push(folder.join(format!("nua-config.{{{}}}", EXTENSIONS.join(","))));
        match present.as_slice() {
            [] => continue,
            [one] => {
                let format = format_of(one).expect("known extension");
                return Ok(Found {
                    file: one.clone(),
                    format,
                    root,
                });
            }
            [first, second, ..] => {
                return Err(Error::Ambiguous {
                    first: first.clone(),
                    second: second.clone(),
                })
            }
        }
    }
    Err(Error::NotFound {
        dir: path.to_path_buf(),
        searched,
    })
}

fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "toml" => Some(Format::Toml),
        "json" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        _ => None,
    }
}

/// The root of the app whose config file is in `folder`: `app/nua/metadata` and `app/nua` →
/// `app` (`.` for a relative `nua`); anything else is its own root.
fn root_of(folder: &Path) -> PathBuf {
    let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(String::from);
    let above_nua = match name(folder).as_deref() {
        Some("nua") => folder.parent(),
        Some("metadata") => folder
            .parent()
            .filter(|p| name(p).as_deref() == Some("nua"))
            .and_then(Path::parent),
        _ => None,
    };
    match above_nua {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_path_buf(),
        None => folder.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(p, "").unwrap();
        }
        dir
    }

    #[rstest]
    #[case(&["nua-config.toml"], "nua-config.toml")]
    #[case(&["nua/nua-config.yml"], "nua/nua-config.yml")]
    #[case(&["nua/metadata/nua-config.json"], "nua/metadata/nua-config.json")]
    #[case(&["nua-config.json", "nua/nua-config.toml"], "nua-config.json")]
    fn a_folder_finds_the_highest_config(#[case] files: &[&str], #[case] want: &str) {
        let dir = tree(files);
        let found = find(dir.path()).unwrap();
        assert_eq!(found.file, dir.path().join(want));
        assert_eq!(found.root, dir.path());
    }

    #[rstest]
    #[case("nua/nua-config.toml")]
    #[case("nua/metadata/nua-config.toml")]
    fn a_file_in_nua_or_nua_metadata_has_the_app_as_root(#[case] file: &str) {
        let dir = tree(&[file]);
        let found = find(&dir.path().join(file)).unwrap();
        assert_eq!(found.root, dir.path());
    }

    #[test]
    fn a_file_elsewhere_has_its_folder_as_root() {
        let dir = tree(&["app/nua-config.toml", "metadata/nua-config.toml"]);
        let found = find(&dir.path().join("app/nua-config.toml")).unwrap();
        assert_eq!(found.root, dir.path().join("app"));
        // `metadata` is special only under `nua`.
        let found = find(&dir.path().join("metadata/nua-config.toml")).unwrap();
        assert_eq!(found.root, dir.path().join("metadata"));
    }

    /// `nua-pack build proj/nua`, with the config directly in `proj/nua`: the user pointed at
    /// `proj/nua`, so that is what is built.
    #[rstest]
    #[case("proj/nua", "proj/nua/nua-config.toml")]
    #[case("proj/nua/metadata", "proj/nua/metadata/nua-config.toml")]
    fn a_folder_named_nua_holding_the_config_is_its_own_root(
        #[case] given: &str,
        #[case] file: &str,
    ) {
        let dir = tree(&[file]);
        let found = find(&dir.path().join(given)).unwrap();
        assert_eq!(found.file, dir.path().join(file));
        assert_eq!(found.root, dir.path().join(given));
    }

    #[test]
    fn a_folder_named_nua_searches_its_own_nua_folder() {
        let dir = tree(&["nua/nua/nua-config.toml"]);
        let found = find(&dir.path().join("nua")).unwrap();
        assert_eq!(found.file, dir.path().join("nua/nua/nua-config.toml"));
        assert_eq!(found.root, dir.path().join("nua"));
    }

    #[rstest]
    #[case("nua/nua-config.toml", ".")]
    #[case("nua/metadata/nua-config.toml", ".")]
    #[case("app/nua/nua-config.toml", "app")]
    fn relative_files_have_a_nonempty_root(#[case] file: &str, #[case] root: &str) {
        assert_eq!(root_of(Path::new(file).parent().unwrap()), Path::new(root));
    }

    #[test]
    fn two_configs_in_one_folder_are_an_error() {
        let dir = tree(&["nua-config.toml", "nua-config.yaml"]);
        assert!(matches!(find(dir.path()), Err(Error::Ambiguous { .. })));
    }

    #[test]
    fn nothing_found_names_every_place_searched() {
        let dir = tree(&[]);
        let err = find(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("nua/metadata/nua-config.{toml,json,yaml,yml}"),
            "{err}"
        );
    }
}
