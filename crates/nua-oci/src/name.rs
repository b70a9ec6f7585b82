//! Image names as written into layouts: `nua-foo:1.0-1` ↔ `docker.io/library/nua-foo:1.0-1`.
//!
//! Follows the normalization of Docker's reference grammar (distribution/reference): a first
//! component without `.` or `:` that is not `localhost` is not a registry, so the name lives on
//! `docker.io`, and a single-component name there is under `library/`.

use std::fmt;

use super::error::{Error, Result};

const DOCKER_HUB: &str = "docker.io";

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
        let invalid = |reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        };
        if name.contains('@') {
            return Err(invalid(
                "a digest reference cannot name an image in a layout",
            ));
        }
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
            None => (name, "latest"),
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !tag_ok {
            return Err(invalid(
                "a tag is 1 to 128 of `A-Za-z0-9_.-`, not starting with `.` or `-`",
            ));
        }
        let (domain, path) = match repo.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first, rest.to_owned())
            }
            _ if !repo.contains('/') => (DOCKER_HUB, format!("library/{repo}")),
            _ => (DOCKER_HUB, repo.to_owned()),
        };
        let path_ok = !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
                    && c.as_bytes()[0].is_ascii_alphanumeric()
            });
        if !path_ok {
            return Err(invalid(
                "repository components are lowercase letters, digits and `._-`, starting with a letter or digit",
            ));
        }
        Ok(ImageName {
            repository: format!("{domain}/{path}"),
            tag: tag.to_owned(),
        })
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
