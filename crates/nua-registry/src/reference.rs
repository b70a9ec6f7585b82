//! Image references: the parser and type are nua-oci's ([`nua_oci::reference`]), re-exported
//! here so that registry code and its callers name them where they use them.

pub use nua_oci::reference::{Reference, DOCKER_HUB, DOCKER_HUB_API};
