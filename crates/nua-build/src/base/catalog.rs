//! The definitions of `base-images/` and `layers/`: parsed, checked, and resolved by name.
//!
//! The definitions (and the lock files beside them) are compiled into the binary, so
//! `nua-pack` needs no checkout; `NUA_BASE_IMAGES` points at another `base-images/` folder
//! (its `layers/` sibling is read too) for people who keep their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::config::{ImageSettings, LayerFile};
use super::BaseError;

/// `base-images/<name>.toml`: a Debian bootstrap, or another base, plus layers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BaseDef {
    /// One line shown by `nua-pack base list`.
    pub description: String,
    /// The base this one adds layers to.
    #[serde(default)]
    pub from: Option<String>,
    /// A registry image the base starts from instead (`python:3.12-slim`), pulled by the
    /// digest its lock records.
    #[serde(default)]
    pub image: Option<String>,
    /// The nua-config `builder` names that resolve to this base.
    #[serde(default)]
    pub builders: Vec<String>,
    /// Recipes of `layers/`, applied in order.
    #[serde(default)]
    pub layers: Vec<String>,
    /// Where the root filesystem comes from when there is no `from`.
    #[serde(default)]
    pub bootstrap: Option<Bootstrap>,
}

/// `[bootstrap]`: a root filesystem assembled from a Debian suite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bootstrap {
    pub suite: String,
    /// The suites resolved over, in order (the highest version wins, a tie goes to the
    /// later suite); by default `SUITE`, `SUITE-updates` and `SUITE-security`.
    #[serde(default)]
    pub suites: Option<Vec<String>>,
    #[serde(default = "main_component")]
    pub components: Vec<String>,
    /// Packages installed beside the `Essential: yes` set.
    #[serde(default)]
    pub include: Vec<String>,
    /// Also every package of `Priority: required` (debootstrap's minbase).
    #[serde(default)]
    pub required: bool,
    /// A snapshot.debian.org timestamp (`20261101T000000Z`) pinning the archive.
    #[serde(default)]
    pub snapshot: Option<String>,
}

fn main_component() -> Vec<String> {
    vec!["main".to_owned()]
}

/// `layers/<name>.toml`: files to write, commands to run before the packages' maintainer
/// scripts, packages to install, then commands to run as root; and the image config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LayerDef {
    pub description: String,
    #[serde(default)]
    pub packages: Vec<String>,
    /// Shell commands run as root after the packages are unpacked and before their
    /// maintainer scripts (postgresql's `create_main_cluster = false`).
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub run: Vec<String>,
    /// Files of `layers/`, written before the `before` commands.
    #[serde(default)]
    pub files: Vec<LayerFile>,
    /// Variables set in the image config of every image built on this layer.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Entry point, command, ports… of every image built on this layer.
    #[serde(default)]
    pub config: ImageSettings,
}

/// Every base and layer definition, with the texts they were read from.
#[derive(Debug, Clone)]
pub struct Catalog {
    bases: BTreeMap<String, (BaseDef, String)>,
    layers: BTreeMap<String, (LayerDef, String)>,
    /// The contents of the files layers name, by `source` (relative to `layers/`).
    files: BTreeMap<String, Vec<u8>>,
    locks: BTreeMap<String, String>,
    /// The `base-images/` folder when read from disk (where `base lock` writes).
    dir: Option<PathBuf>,
}

/// The contents of a file under `layers/`, `None` when there is none.
type FileReader<'a> = dyn Fn(&str) -> Result<Option<Vec<u8>>, BaseError> + 'a;

macro_rules! embedded {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../../", $dir, "/", $name, ".toml")))),*]
    };
}

/// The definitions compiled in; a test checks this list against the folders.
const BASES: &[(&str, &str)] = embedded!("base-images":
    "debian-bookworm", "debian-trixie", "mariadb-10.11", "nginx", "node-18", "node-20",
    "postgres-15", "python", "redis-7", "ruby");
const LAYERS: &[(&str, &str)] =
    embedded!("layers": "mariadb", "nginx", "node", "nua", "postgres", "python", "redis", "ruby");
/// The files layers copy into images, by their path under `layers/`.
const FILES: &[(&str, &[u8])] = &[
    (
        "mariadb/docker-entrypoint.sh",
        include_bytes!("../../../../layers/mariadb/docker-entrypoint.sh"),
    ),
    (
        "postgres/docker-entrypoint.sh",
        include_bytes!("../../../../layers/postgres/docker-entrypoint.sh"),
    ),
    (
        "redis/docker-entrypoint.sh",
        include_bytes!("../../../../layers/redis/docker-entrypoint.sh"),
    ),
];
const LOCKS: &[(&str, &str)] = &[
    (
        "debian-bookworm",
        include_str!("../../../../base-images/debian-bookworm.lock"),
    ),
    (
        "debian-trixie",
        include_str!("../../../../base-images/debian-trixie.lock"),
    ),
    (
        "node-18",
        include_str!("../../../../base-images/node-18.lock"),
    ),
    (
        "node-20",
        include_str!("../../../../base-images/node-20.lock"),
    ),
    (
        "python",
        include_str!("../../../../base-images/python.lock"),
    ),
    ("ruby", include_str!("../../../../base-images/ruby.lock")),
    (
        "postgres-15",
        include_str!("../../../../base-images/postgres-15.lock"),
    ),
    (
        "mariadb-10.11",
        include_str!("../../../../base-images/mariadb-10.11.lock"),
    ),
    (
        "redis-7",
        include_str!("../../../../base-images/redis-7.lock"),
    ),
    ("nginx", include_str!("../../../../base-images/nginx.lock")),
];

impl Catalog {
    /// The definitions compiled into this binary.
    pub fn builtin() -> Result<Catalog, BaseError> {
        let file = |dir: &str, name: &str| PathBuf::from(format!("{dir}/{name}.toml"));
        let mut catalog = Catalog::empty(None);
        for (name, text) in BASES {
            catalog.add_base(name, text, &file("base-images", name))?;
        }
        let files = |source: &str| {
            Ok(FILES
                .iter()
                .find(|(s, _)| *s == source)
                .map(|(_, bytes)| bytes.to_vec()))
        };
        for (name, text) in LAYERS {
            catalog.add_layer(name, text, &file("layers", name), &files)?;
        }
        // An empty lock file stands for none (a base being written).
        for (name, text) in LOCKS.iter().filter(|(_, t)| !t.trim().is_empty()) {
            catalog.locks.insert((*name).to_owned(), (*text).to_owned());
        }
        catalog.check()?;
        Ok(catalog)
    }

    /// The definitions of a `base-images/` folder and of its sibling `layers/`.
    pub fn from_dir(dir: &Path) -> Result<Catalog, BaseError> {
        let mut catalog = Catalog::empty(Some(dir.to_path_buf()));
        let layers_dir = dir.parent().unwrap_or(Path::new(".")).join("layers");
        for (folder, is_base) in [(dir, true), (layers_dir.as_path(), false)] {
            let entries = fs_err::read_dir(folder).map_err(|source| BaseError::Read {
                path: folder.to_path_buf(),
                source,
            })?;
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for path in files {
                let (Some(stem), Some(ext)) = (
                    path.file_stem().and_then(|s| s.to_str()),
                    path.extension().and_then(|s| s.to_str()),
                ) else {
                    continue;
                };
                let read = || {
                    fs_err::read_to_string(&path).map_err(|source| BaseError::Read {
                        path: path.clone(),
                        source,
                    })
                };
                match (ext, is_base) {
                    ("toml", true) => catalog.add_base(stem, &read()?, &path)?,
                    ("toml", false) => {
                        let files = |source: &str| {
                            let file = layers_dir.join(source);
                            match fs_err::read(&file) {
                                Ok(bytes) => Ok(Some(bytes)),
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                                Err(source) => Err(BaseError::Read { path: file, source }),
                            }
                        };
                        catalog.add_layer(stem, &read()?, &path, &files)?
                    }
                    ("lock", true) => {
                        let text = read()?;
                        if !text.trim().is_empty() {
                            catalog.locks.insert(stem.to_owned(), text);
                        }
                    }
                    _ => {}
                }
            }
        }
        catalog.check()?;
        Ok(catalog)
    }

    fn empty(dir: Option<PathBuf>) -> Catalog {
        Catalog {
            bases: BTreeMap::new(),
            layers: BTreeMap::new(),
            files: BTreeMap::new(),
            locks: BTreeMap::new(),
            dir,
        }
    }

    fn add_base(&mut self, name: &str, text: &str, path: &Path) -> Result<(), BaseError> {
        let def: BaseDef = toml::from_str(text).map_err(|source| BaseError::Definition {
            path: path.to_path_buf(),
            message: source.to_string(),
        })?;
        let given: Vec<&str> = [
            (def.image.is_some(), "`image`"),
            (def.from.is_some(), "`from`"),
            (def.bootstrap.is_some(), "`[bootstrap]`"),
        ]
        .iter()
        .filter_map(|(set, key)| set.then_some(*key))
        .collect();
        if given.len() != 1 {
            let has = match &given[..] {
                [] => "it has none".to_owned(),
                keys => format!("it has {}", keys.join(" and ")),
            };
            return Err(BaseError::Definition {
                path: path.to_path_buf(),
                message: format!(
                    "a base starts from exactly one of `image`, `from` and `[bootstrap]` ({has})"
                ),
            });
        }
        self.bases.insert(name.to_owned(), (def, text.to_owned()));
        Ok(())
    }

    /// Add layer `name` read from `path`; `files` gives the contents of a file under
    /// `layers/` (`None` when there is none).
    fn add_layer(
        &mut self,
        name: &str,
        text: &str,
        path: &Path,
        files: &FileReader,
    ) -> Result<(), BaseError> {
        let bad = |message: String| BaseError::Definition {
            path: path.to_path_buf(),
            message,
        };
        let def: LayerDef = toml::from_str(text).map_err(|source| bad(source.to_string()))?;
        def.config.check().map_err(bad)?;
        for file in &def.files {
            file.check().map_err(bad)?;
            let content = files(&file.source)?.ok_or_else(|| {
                bad(format!(
                    "`files.source`: there is no file `layers/{}`",
                    file.source
                ))
            })?;
            self.files.insert(file.source.clone(), content);
        }
        self.layers.insert(name.to_owned(), (def, text.to_owned()));
        Ok(())
    }

    /// The commands that write the files of layer `name` (see [`LayerFile::command`]).
    pub fn file_commands(&self, name: &str) -> Vec<String> {
        self.layer(name).map_or_else(Vec::new, |def| {
            def.files
                .iter()
                .map(|f| f.command(&self.files[&f.source]))
                .collect()
        })
    }

    /// Every `from` and layer name refers to something, with no cycle.
    fn check(&self) -> Result<(), BaseError> {
        for name in self.bases.keys() {
            self.chain(name)?;
        }
        Ok(())
    }

    /// The folder definitions were read from, when not compiled in.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file base `name` is defined in, for messages (`base-images/NAME.toml` when
    /// compiled in).
    pub fn definition_path(&self, name: &str) -> PathBuf {
        let dir = self.dir.as_deref().unwrap_or(Path::new("base-images"));
        dir.join(format!("{name}.toml"))
    }

    /// Base names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.bases.keys().map(String::as_str)
    }

    pub fn base(&self, name: &str) -> Result<&BaseDef, BaseError> {
        self.bases
            .get(name)
            .map(|(def, _)| def)
            .ok_or_else(|| BaseError::UnknownBase {
                name: name.to_owned(),
                known: self.bases.keys().cloned().collect(),
            })
    }

    pub fn layer(&self, name: &str) -> Option<&LayerDef> {
        self.layers.get(name).map(|(def, _)| def)
    }

    /// The lock file text of `name`, if there is one.
    pub fn lock_text(&self, name: &str) -> Option<&str> {
        self.locks.get(name).map(String::as_str)
    }

    /// `name` and the bases it is built `from`, the bootstrap first.
    pub fn chain(&self, name: &str) -> Result<Vec<(&str, &BaseDef)>, BaseError> {
        let mut chain = Vec::new();
        let mut next = Some(name);
        while let Some(current) = next {
            let (key, (def, _)) =
                self.bases
                    .get_key_value(current)
                    .ok_or_else(|| BaseError::UnknownBase {
                        name: current.to_owned(),
                        known: self.bases.keys().cloned().collect(),
                    })?;
            if chain.iter().any(|(n, _)| *n == current) {
                return Err(BaseError::Cycle {
                    name: name.to_owned(),
                });
            }
            for layer in &def.layers {
                if !self.layers.contains_key(layer) {
                    return Err(BaseError::UnknownLayer {
                        base: current.to_owned(),
                        layer: layer.clone(),
                    });
                }
            }
            chain.push((key.as_str(), def));
            next = def.from.as_deref();
        }
        chain.reverse();
        Ok(chain)
    }

    /// The registry image the chain of `name` starts from, with the base that says so.
    pub fn root_image(&self, name: &str) -> Result<Option<(&str, &str)>, BaseError> {
        let chain = self.chain(name)?;
        Ok(chain[0].1.image.as_deref().map(|image| (chain[0].0, image)))
    }

    /// A digest of every definition text `name` is made from: a lock made for other
    /// definitions is stale.
    pub fn fingerprint(&self, name: &str) -> Result<String, BaseError> {
        let mut hasher = Sha256::new();
        for (base, def) in self.chain(name)? {
            hasher.update(base.as_bytes());
            hasher.update([0]);
            hasher.update(self.bases[base].1.as_bytes());
            hasher.update([0]);
            for layer in &def.layers {
                hasher.update(layer.as_bytes());
                hasher.update([0]);
                hasher.update(self.layers[layer].1.as_bytes());
                hasher.update([0]);
                // Only layers with files hash more: the fingerprints of the others (and
                // so their locks) stay what they were.
                for file in &self.layers[layer].0.files {
                    hasher.update(file.source.as_bytes());
                    hasher.update([0]);
                    hasher.update(&self.files[&file.source]);
                    hasher.update([0]);
                }
            }
        }
        Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_file_is_compiled_in() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let on_disk = Catalog::from_dir(&root.join("base-images")).unwrap();
        let builtin = Catalog::builtin().unwrap();
        assert_eq!(
            on_disk.names().collect::<Vec<_>>(),
            builtin.names().collect::<Vec<_>>()
        );
        assert_eq!(
            on_disk.layers.keys().collect::<Vec<_>>(),
            builtin.layers.keys().collect::<Vec<_>>()
        );
        assert_eq!(on_disk.locks, builtin.locks);
        assert_eq!(on_disk.files, builtin.files);
        for name in builtin.names() {
            assert_eq!(
                on_disk.fingerprint(name).unwrap(),
                builtin.fingerprint(name).unwrap()
            );
        }
    }

    #[test]
    fn chains_start_with_a_bootstrap() {
        let catalog = Catalog::builtin().unwrap();
        let chain = catalog.chain("python").unwrap();
        let names: Vec<_> = chain.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["debian-bookworm", "python"]);
        assert!(chain[0].1.bootstrap.is_some());
    }

    #[test]
    fn refuses_a_cycle_and_unknown_names() {
        let mut catalog = Catalog::empty(None);
        let path = Path::new("x.toml");
        catalog
            .add_base("a", "description = \"a\"\nfrom = \"b\"", path)
            .unwrap();
        catalog
            .add_base("b", "description = \"b\"\nfrom = \"a\"", path)
            .unwrap();
        assert!(matches!(catalog.check(), Err(BaseError::Cycle { .. })));
        let err = catalog.base("c").unwrap_err().to_string();
        assert!(err.contains("`c`") && err.contains("a, b"), "{err}");
        let err = catalog
            .add_base("d", "description = \"d\"", path)
            .unwrap_err();
        assert!(err.to_string().contains("exactly one of"), "{err}");
    }

    #[test]
    fn a_base_starts_from_one_image_from_or_bootstrap() {
        let mut catalog = Catalog::empty(None);
        let path = Path::new("base-images/two.toml");
        let two = "description = \"x\"\nimage = \"python:3.12-slim\"\nfrom = \"a\"\n";
        let err = catalog.add_base("two", two, path).unwrap_err().to_string();
        assert_eq!(
            err,
            "`base-images/two.toml` is not a valid definition: a base starts from exactly one \
             of `image`, `from` and `[bootstrap]` (it has `image` and `from`)"
        );
        let one = "description = \"x\"\nimage = \"python:3.12-slim\"\nlayers = [\"l\"]\n";
        catalog.add_base("one", one, path).unwrap();
        catalog
            .add_layer("l", "description = \"l\"", path, &|_| Ok(None))
            .unwrap();
        assert_eq!(
            catalog.root_image("one").unwrap(),
            Some(("one", "python:3.12-slim"))
        );
    }
}
