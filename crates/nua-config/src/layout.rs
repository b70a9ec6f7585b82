//! The image layout contract: where a Nua image keeps the app, its metadata and its scripts,
//! and the labels it carries. The build writes them, the runtime and the orchestrator read
//! them back from an image; both name them from here so they cannot drift apart.
//!
//! The tree is the one of the seed image spec: everything of Nua under `/nua`. This module only
//! names things; it reads and writes nothing.

/// Declares each path twice from one literal: absolute (`/nua/app`, for an image config or a
/// file read from a container) and, in [`in_layer`], relative to a layer's root (`nua/app`, a
/// tar entry name).
macro_rules! paths {
    ($($(#[doc = $doc:literal])* $name:ident = $path:literal;)*) => {
        $($(#[doc = $doc])* pub const $name: &str = concat!("/", $path);)*

        /// The paths of [`crate::layout`] relative to the root of a layer, as tar entries are
        /// named: `nua/metadata/nua-config.json`.
        pub mod in_layer {
            $($(#[doc = $doc])* pub const $name: &str = $path;)*
        }
    };
}

paths! {
    /// `/nua`: the home of the `nua` user and the root of everything Nua adds.
    NUA_DIR = "nua";
    /// `/nua/app`: the app's source and build output; the working directory of the app.
    APP_DIR = "nua/app";
    /// `/nua/metadata`: what the build says about the image, read by the runtime.
    METADATA_DIR = "nua/metadata";
    /// `/nua/metadata/nua-config.json`: the normalized nua-config, provider modules merged
    /// ([`crate::NuaConfig::normalized_json`]).
    CONFIG_FILE = "nua/metadata/nua-config.json";
    /// `/nua/metadata/sbom.json`: the SPDX software bill of materials of the image.
    SBOM_FILE = "nua/metadata/sbom.json";
    /// `/nua/scripts`: scripts the build generates.
    SCRIPTS_DIR = "nua/scripts";
    /// `/nua/scripts/start`: the image's command, running the `[run] start` commands.
    START_SCRIPT = "nua/scripts/start";
    /// `/nua/etc`: configuration files of the app.
    ETC_DIR = "nua/etc";
    /// `/nua/bin`: executables of the app, first on the `PATH`.
    BIN_DIR = "nua/bin";
    /// `/nua/venv`: the Python virtual environment of Python apps.
    VENV_DIR = "nua/venv";
}

/// The uid of the `nua` user that runs the app and owns `/nua/app`; base images create the
/// user with it, and on a bare root file system the number still works.
pub const NUA_UID: u32 = 1000;
/// The gid of the `nua` user's group.
pub const NUA_GID: u32 = 1000;

/// Label: the app's `metadata.id`.
pub const LABEL_APP_ID: &str = "APP_ID";
/// Label: the image's tag, `nua-<id>:<version>-<release>` ([`crate::NuaConfig::image_tag`]).
pub const LABEL_TAG: &str = "NUA_TAG";
/// Label: the version of Nua that built the image.
pub const LABEL_BUILD_VERSION: &str = "NUA_BUILD_VERSION";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_paths_are_the_absolute_ones_without_the_root() {
        assert_eq!(CONFIG_FILE, "/nua/metadata/nua-config.json");
        assert_eq!(in_layer::CONFIG_FILE, "nua/metadata/nua-config.json");
        for (absolute, relative) in [
            (APP_DIR, in_layer::APP_DIR),
            (SBOM_FILE, in_layer::SBOM_FILE),
            (START_SCRIPT, in_layer::START_SCRIPT),
        ] {
            assert_eq!(absolute.strip_prefix('/'), Some(relative));
        }
        assert!(CONFIG_FILE.starts_with(METADATA_DIR) && METADATA_DIR.starts_with(NUA_DIR));
    }
}
