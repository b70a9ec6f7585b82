//! What `nua run` was given: an app folder or nua-config to build, an image tarball or OCI
//! layout folder to load, or the reference of an image the engine has.
//!
//! A path is told from a reference by how it looks: anything starting with `.`, `/` or `~`,
//! and anything that exists on disk, is a path; so `./app` that does not exist is an error
//! naming it, never a reference Docker is asked about.

use std::io::Read;
use std::path::{Path, PathBuf};

/// What to run, once looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An app folder or nua-config file: built first.
    App(PathBuf),
    /// An image tarball or OCI layout folder: loaded first.
    Image(PathBuf),
    /// An image the engine should already have.
    Reference(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{}` does not exist", path.display())]
    NotFound { path: PathBuf },
}

impl Target {
    /// Classify `text` as given on the command line; `home` expands a leading `~`.
    pub fn classify(text: &str, home: Option<&Path>) -> Result<Target, Error> {
        let path = expand_home(text, home);
        let looks_like_path = text.starts_with(['.', '/', '~']);
        if path.is_dir() {
            // An OCI layout says so with its `oci-layout` file (the image spec's MUST); an
            // app folder may well hold a `manifest.json` or `index.json` of its own.
            return Ok(if path.join("oci-layout").is_file() {
                Target::Image(path)
            } else {
                Target::App(path)
            });
        }
        if path.exists() {
            return Ok(if is_image_file(&path) {
                Target::Image(path)
            } else {
                Target::App(path)
            });
        }
        if looks_like_path {
            return Err(Error::NotFound { path });
        }
        Ok(Target::Reference(text.to_owned()))
    }

    /// Whether the nua-config comes from an app the user builds (and so may mount host
    /// folders), rather than from an image.
    pub fn is_app(&self) -> bool {
        matches!(self, Target::App(_))
    }
}

fn expand_home(text: &str, home: Option<&Path>) -> PathBuf {
    match (text.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_path_buf(),
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(text),
    }
}

/// Whether a file is a tar archive (the `ustar` magic of POSIX tar headers), or anything
/// else that is not text: a nua-config is text, an image is not.
fn is_image_file(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head));
    match read {
        Ok(n) if n >= 262 => &head[257..262] == b"ustar" || head[..n].contains(&0),
        Ok(n) => head[..n].contains(&0),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_files_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let layout = dir.path().join("layout");
        std::fs::create_dir(&layout).unwrap();
        std::fs::write(layout.join("oci-layout"), "{}").unwrap();
        let config = dir.path().join("nua-config.toml");
        std::fs::write(&config, "[metadata]\n").unwrap();
        let tarball = dir.path().join("image.tar");
        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        std::fs::write(&tarball, tar).unwrap();

        let classify = |p: &Path| Target::classify(p.to_str().unwrap(), None).unwrap();
        assert_eq!(classify(&app), Target::App(app.clone()));
        assert_eq!(classify(&layout), Target::Image(layout.clone()));
        assert_eq!(classify(&config), Target::App(config.clone()));
        assert_eq!(classify(&tarball), Target::Image(tarball.clone()));
        assert_eq!(
            Target::classify("127.0.0.1:5000/team/app:1.0", None).unwrap(),
            Target::Reference("127.0.0.1:5000/team/app:1.0".into())
        );
        assert_eq!(
            Target::classify("nua-flask-hello:1.0-1", None).unwrap(),
            Target::Reference("nua-flask-hello:1.0-1".into())
        );
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        for text in [
            "./no-such-app",
            "/nonexistent/no-such-app",
            "../no-such-app",
            "~/no-such-app",
        ] {
            let err = Target::classify(text, Some(Path::new("/nonexistent-home"))).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains("no-such-app"), "{shown}");
            assert!(shown.ends_with("does not exist"), "{shown}");
        }
    }

    #[test]
    fn a_tilde_is_the_home_folder() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("app")).unwrap();
        assert_eq!(
            Target::classify("~/app", Some(home.path())).unwrap(),
            Target::App(home.path().join("app"))
        );
    }
}
