//! Image names as written into layouts: `nua-foo:1.0-1` ↔ `docker.io/library/nua-foo:1.0-1`.
//!
//! A name is a [`Reference`] with a tag (`latest` when none is given) and no digest, parsed
//! and normalized by the one parser of [`crate::reference`].

use std::fmt;

use super::error::{Error, Result};
use super::reference::Reference;

/// A fully qualified repository and a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// Full repository, e.g. `docker.io/library/nua-foo`.
    repository: String,
    tag: String,
}

impl ImageName {
    /// Parse `[registry/]path[:tag]`; the tag defaults to `latest`. Digests are refused.
    pub fn parse(name: &str) -> Result<ImageName> {
        let invalid = |reason: String| Error::InvalidName {
            name: name.to_owned(),
            reason,
        };
        if name.contains('@') {
            return Err(invalid(
                "a digest reference cannot name an image in a layout".into(),
            ));
        }
        let reference = Reference::parse(name).map_err(|e| match e {
            Error::InvalidReference { reason, .. } => invalid(reason),
            other => other,
        })?;
        let tag = reference.tag.as_deref().unwrap_or("latest");
        Ok(ImageName::from_parts(reference.name(), tag.to_owned()))
    }

    /// A name from a repository and a tag already checked by the parser.
    pub(crate) fn from_parts(repository: String, tag: String) -> ImageName {
        ImageName { repository, tag }
    }

    /// `docker.io/library/nua-foo:1.0-1`.
    pub fn full(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// The tag, `1.0-1`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The fully qualified repository, `docker.io/library/nua-foo`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The short form Docker prints and writes into `RepoTags`: `nua-foo:1.0-1`.
    pub fn familiar(&self) -> String {
        let short = self
            .repository
            .strip_prefix("docker.io/")
            .map(|p| {
                p.strip_prefix("library/")
                    .filter(|r| !r.contains('/'))
                    .unwrap_or(p)
            })
            .unwrap_or(&self.repository);
        format!("{short}:{}", self.tag)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_like_docker() {
        for (input, full, familiar) in [
            (
                "nua-foo:1.0-1",
                "docker.io/library/nua-foo:1.0-1",
                "nua-foo:1.0-1",
            ),
            (
                "nua-foo",
                "docker.io/library/nua-foo:latest",
                "nua-foo:latest",
            ),
            (
                "abilian/nua-foo:2",
                "docker.io/abilian/nua-foo:2",
                "abilian/nua-foo:2",
            ),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
            ),
            (
                "registry.example/a/b:c",
                "registry.example/a/b:c",
                "registry.example/a/b:c",
            ),
        ] {
            let name = ImageName::parse(input).unwrap();
            assert_eq!(name.full(), full);
            assert_eq!(name.familiar(), familiar);
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "Nua-Foo:1",
            "foo:",
            "foo:-x",
            "foo@sha256:abc",
            "foo//bar:1",
            "",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }
}
