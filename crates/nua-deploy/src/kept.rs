//! The `random` env values of an app's earlier runs, kept so that data the app made with
//! them in its volumes still matches on the next run (a database password seeded into a
//! volume on the first start must be the same on the second). They go with the volumes:
//! `nua stop --volumes` forgets them.
//!
//! One JSON file per app in a folder only this user can read (0700, files 0600).

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] nua_oci::Error),
}

/// The kept values of every app, in one folder.
#[derive(Debug, Clone)]
pub struct KeptValues {
    dir: PathBuf,
}

impl KeptValues {
    pub fn new(dir: impl Into<PathBuf>) -> KeptValues {
        KeptValues { dir: dir.into() }
    }

    fn file(&self, app: &str) -> PathBuf {
        self.dir.join(format!("{app}.json"))
    }

    /// The values of earlier runs of `app`; none when there were none (or the file cannot
    /// be read: then new ones are made, as on a first run).
    pub fn load(&self, app: &str) -> BTreeMap<String, String> {
        std::fs::read(self.file(app))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Keep `values` for the next runs of `app` (nothing is written when there are none).
    pub fn save(&self, app: &str, values: &BTreeMap<String, String>) -> Result<(), Error> {
        if values.is_empty() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| Error::Io {
                action: "create",
                path: self.dir.clone(),
                source,
            })?;
        let json = serde_json::to_vec(values).expect("a map of strings is JSON");
        nua_oci::fs::write_atomic_mode(&self.file(app), &json, 0o600)?;
        Ok(())
    }

    /// Forget the values of `app` (with its volumes).
    pub fn forget(&self, app: &str) -> Result<(), Error> {
        let path = self.file(app);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                action: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    #[test]
    fn values_are_kept_private_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let kept = KeptValues::new(dir.path().join("env"));
        assert!(kept.load("app").is_empty());
        let values = BTreeMap::from([("DB_PASSWORD".to_owned(), "s3cret".to_owned())]);
        kept.save("app", &values).unwrap();
        assert_eq!(kept.load("app"), values);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("env")), 0o700);
        assert_eq!(mode(&dir.path().join("env/app.json")), 0o600);
        kept.forget("app").unwrap();
        assert!(kept.load("app").is_empty());
        kept.forget("app").unwrap();
    }

    #[test]
    fn nothing_is_written_without_values() {
        let dir = tempfile::tempdir().unwrap();
        let kept = KeptValues::new(dir.path().join("env"));
        kept.save("app", &BTreeMap::new()).unwrap();
        assert!(!dir.path().join("env").exists());
    }
}
