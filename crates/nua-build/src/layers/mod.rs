//! What base builds and app builds share: a [`Chain`] of layers being stacked, the
//! [`LayerCache`] that keeps each step's layer under its cache key, the one way keys are
//! made ([`key_of`], [`KeyHasher`]), and the [`Installer`] of Debian packages onto a chain.
//!
//! `base` and `app` both build on this module; it knows neither (no base definitions, no
//! app plan).

mod cache;
mod chain;
mod install;
mod key;
mod pull;

pub use cache::{write_file, Entry, Explain, LayerCache, Remote, RemoteCache};
pub use chain::{only_layers, sandbox_for, BaseOptions, Chain, LayerSummary, Tail};
pub use install::{InstallError, Installer, PlannedStep, BOOTSTRAP};
pub use key::{digest, key_of, KeyHasher};
pub use pull::pull_image;
