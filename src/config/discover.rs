//! Find the nua-config file of an app: given a file, that file; given a folder, the first of
//! `<root>`, `<root>/nua`, `<root>/nua/metadata` holding a `nua-config.{toml,json,yaml,yml}`.
//! The app root is the folder above `nua/` when the file sits in `nua/` or `nua/metadata/`.

use std::path::{Path, PathBuf};

use super::error::Error;
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
    let root = root_of(path);
    let mut searched = Vec::new();
    for folder in [
        root.clone(),
        root.join("nua"),
        root.join("nua").join("metadata"),
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

/// `app/nua/metadata` and `app/nua` → `app`; anything else is its own root.
fn root_of(folder: &Path) -> PathBuf {
    let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(String::from);
    let parent = folder.parent();
    if name(folder).as_deref() == Some("nua") {
        return parent.unwrap_or(folder).to_path_buf();
    }
    if name(folder).as_deref() == Some("metadata")
        && parent.and_then(name).as_deref() == Some("nua")
    {
        return parent
            .and_then(Path::parent)
            .unwrap_or(folder)
            .to_path_buf();
    }
    folder.to_path_buf()
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

    #[test]
    fn a_file_in_nua_metadata_has_the_app_as_root() {
        let dir = tree(&["nua/metadata/nua-config.toml"]);
        let found = find(&dir.path().join("nua/metadata/nua-config.toml")).unwrap();
        assert_eq!(found.root, dir.path());
        assert_eq!(find(&dir.path().join("nua")).unwrap().root, dir.path());
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
