//! Why a step was rebuilt: each step's inputs (named digests) are recorded per app, and a
//! step whose key is not in the cache is compared with its last record.
//!
//! Records live in `<cache>/why/<app id>/<step>.json`, written to a temporary file and
//! renamed, so two builds of one app at once leave one whole record. They only explain; the
//! cache never depends on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layers::{write_file, KeyHasher};

/// How many changed inputs are named before "and N more".
const NAMED: usize = 8;

/// What a step's output depends on, by name: `"commands"`, `"file:app.py"`, ….
pub type Inputs = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Record {
    parent: String,
    inputs: Inputs,
}

/// The records of one app.
pub struct History {
    dir: PathBuf,
}

/// A digest of some bytes, for [`Inputs`] values.
pub use crate::layers::digest;

impl History {
    pub fn new(cache_dir: &Path, app_id: &str) -> History {
        History {
            dir: cache_dir.join("why").join(app_id.replace(['/', '\\'], "_")),
        }
    }

    fn file(&self, step: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", step.replace(['/', ' '], "_")))
    }

    /// Why `step` is being made again, compared with its last record.
    pub fn reasons(&self, step: &str, parent: &str, inputs: &Inputs) -> Vec<String> {
        let previous: Option<Record> = fs_err::read(self.file(step))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let Some(previous) = previous else {
            return vec!["first build of this step with this cache".into()];
        };
        let mut changes = Vec::new();
        for (name, value) in inputs {
            match previous.inputs.get(name) {
                None => changes.push(format!("{} added", label(name))),
                Some(old) if old != value => changes.push(format!("{} changed", label(name))),
                _ => {}
            }
        }
        for name in previous.inputs.keys() {
            if !inputs.contains_key(name) {
                changes.push(format!("{} removed", label(name)));
            }
        }
        if changes.len() > NAMED {
            let more = changes.len() - NAMED;
            changes.truncate(NAMED);
            changes.push(format!("and {more} more"));
        }
        if previous.parent != parent {
            changes.push("a step below it was made again".into());
        }
        if changes.is_empty() {
            changes.push("its layer is no longer in the cache (pruned, or --no-cache)".into());
        }
        changes
    }

    /// Remember the inputs `step` was made from. Failing to write only loses an explanation.
    pub fn record(&self, step: &str, parent: &str, inputs: &Inputs) {
        let record = Record {
            parent: parent.to_owned(),
            inputs: inputs.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&record) {
            let _ = write_file(&self.file(step), &bytes);
        }
    }
}

/// `file:app.py` → `app.py`; other inputs by their name.
fn label(name: &str) -> String {
    match name.strip_prefix("file:") {
        Some(path) => format!("`{path}`"),
        None => name.to_owned(),
    }
}

/// The files of a source tree as inputs: `file:<path>` → digest of mode and content (or
/// link target), for the files `include` keeps. Read once more than the layer writer does,
/// which for an app's source is small next to a build.
pub fn tree_inputs(root: &Path, include: &dyn Fn(&Path, bool) -> bool) -> std::io::Result<Inputs> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Inputs::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let meta = fs_err::symlink_metadata(entry.path())?;
            if !include(&rel, meta.is_dir()) {
                continue;
            }
            let value = if meta.is_dir() {
                pending.push(rel.clone());
                continue;
            } else if meta.file_type().is_symlink() {
                let target = fs_err::read_link(entry.path())?;
                digest(format!("link {}", target.display()).as_bytes())
            } else if meta.is_file() {
                let executable = meta.permissions().mode() & 0o111 != 0;
                let mut key = KeyHasher::new().raw(if executable { "x " } else { "- " });
                std::io::copy(&mut fs_err::File::open(entry.path())?, &mut key)?;
                key.finish()
            } else {
                continue;
            };
            out.insert(format!("file:{}", rel.display()), value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_what_changed_since_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::new(dir.path(), "app");
        let first = inputs(&[("file:app.py", "1"), ("file:old.py", "2")]);
        assert_eq!(
            history.reasons("source", "p", &first),
            vec!["first build of this step with this cache"]
        );
        history.record("source", "p", &first);
        let now = inputs(&[("file:app.py", "3"), ("file:new.py", "4")]);
        assert_eq!(
            history.reasons("source", "p", &now),
            vec!["`app.py` changed", "`new.py` added", "`old.py` removed"]
        );
        assert_eq!(
            history.reasons("source", "q", &first),
            vec!["a step below it was made again"]
        );
        assert_eq!(
            history.reasons("source", "p", &first),
            vec!["its layer is no longer in the cache (pruned, or --no-cache)"]
        );
    }

    #[test]
    fn tree_inputs_follow_content_and_the_executable_bit_not_mtimes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("skip.txt"), "s").unwrap();
        let keep = |rel: &Path, _: bool| rel != Path::new("skip.txt");
        let before = tree_inputs(dir.path(), &keep).unwrap();
        assert_eq!(before.keys().collect::<Vec<_>>(), vec!["file:sub/a.txt"]);
        let file = dir.path().join("sub/a.txt");
        std::fs::write(&file, "a").unwrap();
        assert_eq!(tree_inputs(dir.path(), &keep).unwrap(), before);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(tree_inputs(dir.path(), &keep).unwrap(), before);
    }
}
