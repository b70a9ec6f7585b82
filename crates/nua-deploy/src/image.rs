//! What an image says about itself: the nua-config the build put in it (read from an image
//! archive's layers, or from an image the engine has), and the name an app gets from an
//! image reference.

use std::path::{Path, PathBuf};

use nua_config::NuaConfig;
use nua_runtime::Engine;

use nua_config::layout::CONFIG_FILE as CONFIG_PATH;

/// The largest nua-config read from an image.
const MAX_CONFIG: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] nua_runtime::Error),
    #[error("cannot read `{CONFIG_PATH}` in `{}`", archive.display())]
    Archive {
        archive: PathBuf,
        #[source]
        source: nua_oci::Error,
    },
    #[error("`{CONFIG_PATH}` of the image `{image}` is not a nua-config")]
    NotAConfig {
        image: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The nua-config the build put in an image tarball or layout folder, read from its layers;
/// `None` for an image that has none (not built by Nua).
pub fn config_in_archive(path: &Path) -> Result<Option<NuaConfig>, Error> {
    let (archive, info) = nua_runtime::describe_image(path)?;
    let bytes = nua_runtime::read_image_file(&archive, &info, CONFIG_PATH, MAX_CONFIG).map_err(
        |source| Error::Archive {
            archive: path.to_path_buf(),
            source,
        },
    )?;
    bytes
        .map(|b| parse(&b, &path.display().to_string()))
        .transpose()
}

/// The nua-config the build put in an image the engine has; `None` when it has none.
pub fn config_in_engine(engine: &dyn Engine, image: &str) -> Result<Option<NuaConfig>, Error> {
    engine
        .read_image_file(image, CONFIG_PATH)?
        .map(|b| parse(&b, image))
        .transpose()
}

fn parse(bytes: &[u8], image: &str) -> Result<NuaConfig, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::NotAConfig {
        image: image.to_owned(),
        source,
    })
}

/// The name of the app (and its container): the one given, else its nua-config's id, else
/// the name of its image reference.
pub fn app_name(given: Option<&str>, config: Option<&NuaConfig>, image: &str) -> String {
    match (given, config) {
        (Some(name), _) => name.to_owned(),
        (None, Some(config)) => config.id().to_owned(),
        (None, None) => name_of_reference(image),
    }
}

/// The name of an app run from an image reference: its repository's last component,
/// `registry/team/app:1.0` → `app`. Only the name part is parsed (a digest does not change
/// it). Docker found the image by this reference, so it parses; should it not (an image ID),
/// its characters that a name may not hold become `-`.
pub fn name_of_reference(reference: &str) -> String {
    let name = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    match nua_oci::Reference::parse(name) {
        Ok(parsed) => parsed.base_name().to_owned(),
        Err(_) => name
            .rsplit('/')
            .next()
            .and_then(|last| last.split(':').next())
            .unwrap_or(name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_repository() {
        assert_eq!(
            name_of_reference("nua-flask-hello:1.0-1"),
            "nua-flask-hello"
        );
        assert_eq!(
            name_of_reference("127.0.0.1:5000/team/app@sha256:ab"),
            "app"
        );
    }
}
