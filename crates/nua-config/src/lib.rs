//! Find, parse, validate and normalize nua-config files.
//!
//! [`load`] is the whole pipeline: find the file ([`discover`]), parse it into a tree that
//! knows the line and column of every key (TOML, JSON or YAML), move legacy keys with a
//! warning (`legacy`), check the tree against the schema generated from the [`model`]
//! types, fill providers from their built-in modules ([`providers`]), deserialize, and
//! normalize (`normalize`). Every problem names the file and a line:col. This module
//! never prints; warnings are returned in [`Loaded`].

pub mod deploy;
pub mod discover;
pub mod error;
pub mod image_name;
pub mod layout;
mod legacy;
mod messages;
pub mod model;
mod normalize;
pub(crate) mod parse;
pub mod providers;
pub mod schema;
pub mod services;
mod tree;
mod unknown_key;
mod validate;

use std::path::{Path, PathBuf};

pub use deploy::{load_deploy, DeployFile, LoadedDeploy, ProviderOverride, Site};
pub use error::{Error, Pos, Problem, Warning};
pub use model::{
    Build, BuildMethod, Builder, EnvKind, EnvSpec, EnvValue, Metadata, NuaConfig, OneOrMany, Run,
};
pub use normalize::expand_placeholders;
pub use parse::Format;
pub use services::{
    Backup, Healthcheck, ModuleVersion, Port, PortNumber, Protocol, Provider, ProxyOptions, Volume,
    VolumeType,
};

/// How strict [`load`] is.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Turn warnings (legacy keys moved) into an error.
    pub strict: bool,
}

/// A loaded, normalized config.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: NuaConfig,
    /// The config file, as found from the path given.
    pub file: PathBuf,
    /// The app folder: the folder given, when a folder was given (wherever in it the file was
    /// found); for a file given, the folder holding `nua/` when the file is in `<root>/nua` or
    /// `<root>/nua/metadata`, else the file's folder.
    pub root: PathBuf,
    pub warnings: Vec<Warning>,
}

/// Load the nua-config of `path`, a folder or a file.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, Error> {
    let found = discover::find(path)?;
    // std, not fs_err: `Error::Io` names the path already.
    let text = std::fs::read_to_string(&found.file).map_err(|source| Error::Io {
        path: found.file.clone(),
        source,
    })?;
    let (config, warnings) = load_str(&text, found.format, &found.file, opts)?;
    Ok(Loaded {
        config,
        file: found.file,
        root: found.root,
        warnings,
    })
}

/// Load a config from its text; `file` is only used in messages.
pub fn load_str(
    text: &str,
    format: Format,
    file: &Path,
    opts: &LoadOptions,
) -> Result<(NuaConfig, Vec<Warning>), Error> {
    let invalid = |problems: Vec<Problem>| Error::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let mut tree = parse_table(text, format, file, "a nua-config must be a table")?;
    let (mut raw_warnings, mut problems) = legacy::apply(&mut tree);
    let findings = validate::check(&mut tree, schema::cached());
    raw_warnings.extend(findings.warnings);
    problems.extend(findings.problems);
    if !problems.is_empty() {
        problems.sort_by_key(|p| (p.line, p.col));
        return Err(invalid(problems));
    }
    let mut json = tree.to_json();
    if let Some(list) = json.get_mut("provider").and_then(|p| p.as_array_mut()) {
        for (i, provider) in list.iter_mut().enumerate() {
            match providers::merge_module(provider) {
                Ok(merged) => *provider = merged,
                Err(e) => {
                    let pos = tree.locate(&["provider".into(), i.to_string(), e.key.into()]);
                    problems.push(Problem::new(pos, e.message).with_hint(e.hint));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let mut config: NuaConfig = serde_path_to_error::deserialize(json).map_err(|e| {
        let path = path_of(e.path());
        let message = format!("`{}`: {}", messages::display_path(&path), e.inner());
        invalid(vec![Problem::new(tree.locate(&path), message)])
    })?;
    let issues = normalize::normalize(&mut config);
    if !issues.is_empty() {
        let problems = issues
            .into_iter()
            .map(|i| Problem {
                hint: i.hint,
                ..Problem::new(tree.locate(&i.path), i.message)
            })
            .collect();
        return Err(invalid(problems));
    }
    let warnings = located(raw_warnings, file);
    if opts.strict && !warnings.is_empty() {
        return Err(Error::Strict {
            file: file.to_path_buf(),
            warnings,
        });
    }
    Ok((config, warnings))
}

/// Parse `text` into a positioned tree whose top is a table; `must` says what the top must
/// be, in the error when it is not (`a nua-config must be a table`).
fn parse_table(text: &str, format: Format, file: &Path, must: &str) -> Result<parse::Node, Error> {
    let tree = parse::parse(text, format).map_err(|e| Error::Syntax {
        file: file.to_path_buf(),
        format: format.name(),
        pos: e.pos,
        message: e.message,
    })?;
    if tree.entries().is_none() {
        let problem = Problem::new(tree.pos, format!("{must}, found {}", tree.describe()));
        return Err(Error::Invalid {
            file: file.to_path_buf(),
            problems: vec![problem],
        });
    }
    Ok(tree)
}

/// Warnings found at positions of `file`, in the order they appear in it.
fn located(mut found: Vec<(Pos, String)>, file: &Path) -> Vec<Warning> {
    found.sort_by_key(|(pos, _)| *pos);
    found
        .into_iter()
        .map(|(pos, message)| Warning {
            file: file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            message,
        })
        .collect()
}

fn path_of(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

impl NuaConfig {
    /// `metadata.id`.
    pub fn id(&self) -> &str {
        &self.metadata.id
    }

    /// `metadata.version`.
    pub fn version(&self) -> &str {
        &self.metadata.version
    }

    /// `metadata.release`.
    pub fn release(&self) -> Option<u64> {
        self.metadata.release
    }

    /// `nua-<id>:<version>-<release>` (`nua-<id>:<version>` without release); an id that
    /// already starts with `nua-` is not prefixed twice. The [`layout::LABEL_TAG`] of the image.
    pub fn image_tag(&self) -> String {
        format!("{}:{}", self.image_name(), self.version_release())
    }

    /// `nua-<id>_<version>-<release>.tar`: the default name of the image tarball.
    pub fn image_file_name(&self) -> String {
        format!("{}_{}.tar", self.image_name(), self.version_release())
    }

    fn image_name(&self) -> String {
        let id = self.id().strip_prefix("nua-").unwrap_or(self.id());
        format!("nua-{id}")
    }

    fn version_release(&self) -> String {
        match self.release() {
            Some(r) => format!("{}-{r}", self.version()),
            None => self.version().to_string(),
        }
    }

    /// The build method, explicit after loading (`wrap` when `base-image` is set).
    pub fn build_method(&self) -> BuildMethod {
        self.build
            .method
            .unwrap_or(if self.build.base_image.is_some() {
                BuildMethod::Wrap
            } else {
                BuildMethod::Build
            })
    }

    /// `run.start` as a list of commands (empty when there is none).
    pub fn start_commands(&self) -> Vec<String> {
        self.run
            .as_ref()
            .and_then(|r| r.start.as_ref())
            .map(OneOrMany::to_vec)
            .unwrap_or_default()
    }

    /// The ports by name, normalized (protocol, ssl and web set).
    pub fn ports(&self) -> &std::collections::BTreeMap<String, Port> {
        &self.port
    }

    /// The health check, if any.
    pub fn healthcheck(&self) -> Option<&Healthcheck> {
        self.healthcheck.as_ref()
    }

    /// The normalized config with modules merged, as written to [`layout::CONFIG_FILE`]:
    /// kebab-case keys as in the format, absent values left out.
    pub fn normalized_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the config serializes")
    }
}

#[cfg(test)]
mod tests;
