//! Image references, the one parser: `name`, `name:tag`, `host:port/ns/name@sha256:…`.
//!
//! The grammar is the distribution spec's ("Pulling manifests": `<name>` is
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, a `<reference>`
//! is a tag `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}` or a digest `algorithm:encoded`), with the
//! registry host and normalization of Docker's reference package: a first component that has
//! a `.` or a `:`, or is `localhost`, is a registry host; otherwise the image lives on Docker
//! Hub (`docker.io`), under `library/` when it has a single component. The whole name is at
//! most 255 characters. [`crate::ImageName`] (a name in a layout) is built on this parser.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;
use super::error::{Error, Result};
use super::name::ImageName;

/// The registry name of Docker Hub in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's distribution API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/debian`, `ns/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalize `reference`; the error says why it does not parse.
    pub fn parse(reference: &str) -> Result<Reference> {
        parse(reference).map_err(|reason| Error::InvalidReference {
            reference: reference.to_owned(),
            reason,
        })
    }

    /// What to ask the registry for: the digest when there is one, else the tag, else `latest`.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The host that serves the distribution API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// Whether the image lives on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The last component of the repository, without registry, tag or digest:
    /// `127.0.0.1:5000/team/app:1` → `app`, `debian` → `debian`. A valid container name.
    pub fn base_name(&self) -> &str {
        let repository = self.repository.as_str();
        repository.rsplit('/').next().unwrap_or(repository)
    }

    /// The name to write into an image layout: the tag (or `latest`), never the digest; none
    /// for a reference by digest alone (naming it `latest` would retag the user's `latest`).
    pub fn image_name(&self) -> Option<ImageName> {
        if self.tag.is_none() && self.digest.is_some() {
            return None;
        }
        let tag = self.tag.as_deref().unwrap_or("latest");
        Some(ImageName::from_parts(self.name(), tag.to_owned()))
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The parser; the error is the reason, for the caller to wrap with the reference.
fn parse(reference: &str) -> Result<Reference, String> {
    if reference.is_empty() {
        return Err("it is empty".into());
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => {
            let digest = Digest::from_str(digest)
                .map_err(|e| format!("the digest after `@` is not valid ({e})"))?;
            (rest, Some(digest))
        }
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
            check_host(first)?;
            (first, path)
        }
        _ => (DOCKER_HUB, name),
    };
    // `index.docker.io` is an old name of Docker Hub, as in Docker's normalization, and an
    // official image's name on Docker Hub always lives under `library/`.
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB
    } else {
        registry
    };
    let path = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    check_path(&path)?;
    if registry.len() + 1 + path.len() > 255 {
        return Err("the name is longer than 255 characters".into());
    }
    Ok(Reference {
        registry: registry.to_owned(),
        repository: path,
        tag: tag.map(str::to_owned),
        digest,
    })
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("a tag is 1 to 128 of `A-Za-z0-9_.-`, not starting with `.` or `-`".into())
    }
}

/// `host[:port]`: dot-separated components of letters, digits and inner `-`; or `[IPv6]`.
fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') => (name, Some(port)),
        _ => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the registry port must be a number (`host:5000`)".into());
        }
    }
    if name.starts_with('[') && name.ends_with(']') {
        return Ok(());
    }
    let ok = name.split('.').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    });
    if ok {
        Ok(())
    } else {
        Err(
            "the registry host has an invalid component (letters, digits and inner `-` only)"
                .into(),
        )
    }
}

/// `component(/component)*`, each `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_path(path: &str) -> Result<(), String> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".into());
    }
    for component in path.split('/') {
        check_component(component)?;
    }
    Ok(())
}

/// One `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("the repository has an empty component (`//` or a trailing `/`)".into());
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("repository components start and end with a lowercase letter or digit".into());
    }
    let separators_ok = component
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-'));
    if separators_ok {
        Ok(())
    } else {
        Err("repository components are lowercase letters and digits separated by `.`, `_`, `__` or dashes".into())
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[rstest]
    #[case("debian", "docker.io", "library/debian", None, false)]
    #[case(
        "debian:bookworm-slim",
        "docker.io",
        "library/debian",
        Some("bookworm-slim"),
        false
    )]
    #[case("nuacloud/app:1.0", "docker.io", "nuacloud/app", Some("1.0"), false)]
    #[case("docker.io/library/debian", "docker.io", "library/debian", None, false)]
    #[case("index.docker.io/debian", "docker.io", "library/debian", None, false)]
    #[case(
        "docker.io/debian:12",
        "docker.io",
        "library/debian",
        Some("12"),
        false
    )]
    #[case("localhost/app", "localhost", "app", None, false)]
    #[case(
        "127.0.0.1:5000/ns/app:v2",
        "127.0.0.1:5000",
        "ns/app",
        Some("v2"),
        false
    )]
    #[case("ghcr.io/org/sub/app_x.y", "ghcr.io", "org/sub/app_x.y", None, false)]
    #[case("registry.example:5000/ns/name@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "registry.example:5000", "ns/name", None, true)]
    #[case(
        "a/b:t@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "docker.io",
        "a/b",
        Some("t"),
        true
    )]
    fn parses(
        #[case] input: &str,
        #[case] registry: &str,
        #[case] repository: &str,
        #[case] tag: Option<&str>,
        #[case] digest: bool,
    ) {
        let r = Reference::parse(input).unwrap();
        assert_eq!(r.registry, registry);
        assert_eq!(r.repository, repository);
        assert_eq!(r.tag.as_deref(), tag);
        assert_eq!(r.digest.is_some(), digest);
        // Display round-trips to the same reference.
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("Debian", "lowercase")]
    #[case("debian:", "a tag is")]
    #[case("debian:-x", "a tag is")]
    #[case("debian@sha256:abc", "digest")]
    #[case("example.com:port/app", "port must be a number")]
    #[case("ex_ample.com/app", "registry host")]
    #[case("ns//app", "empty component")]
    #[case("ns/app/", "empty component")]
    #[case("ns/-app", "start and end")]
    #[case("ns/a...b", "separated by")]
    fn refuses_with_a_reason(#[case] input: &str, #[case] reason: &str) {
        let err = Reference::parse(input).unwrap_err().to_string();
        assert!(err.contains(reason), "{input:?}: {err}");
        assert!(err.contains(&format!("`{input}`")), "{err}");
    }

    #[test]
    fn targets_and_hosts() {
        let r = Reference::parse("debian").unwrap();
        assert_eq!(r.target(), "latest");
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        assert_eq!(r.to_string(), "docker.io/library/debian");
        let r = Reference::parse(&format!("127.0.0.1:5000/app:1@{D}")).unwrap();
        assert_eq!(r.target(), D);
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(
            r.image_name().unwrap().full(),
            "127.0.0.1:5000/app:1".to_owned()
        );
        let by_digest = Reference::parse(&format!("127.0.0.1:5000/app@{D}")).unwrap();
        assert!(by_digest.image_name().is_none());
        assert_eq!(
            Reference::parse(&"a".repeat(256)).unwrap_err().to_string(),
            format!(
                "invalid image reference `{}`: the name is longer than 255 characters",
                "a".repeat(256)
            )
        );
    }

    #[rstest]
    #[case("nua-flask-hello:1.0-1", "nua-flask-hello")]
    #[case("debian", "debian")]
    #[case(
        "127.0.0.1:5000/team/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "app"
    )]
    #[case("registry.example/a/b/c_d:1", "c_d")]
    fn base_names_are_the_last_component(#[case] input: &str, #[case] name: &str) {
        assert_eq!(Reference::parse(input).unwrap().base_name(), name);
    }
}
