//! Manifest negotiation and platform selection.
//!
//! A GET of `/v2/<name>/manifests/<reference>` accepts the OCI index and manifest and Docker's
//! manifest list and schema 2 manifest; an index (or list) is narrowed to the one manifest of
//! the wanted platform, fetched by digest. Every manifest is checked against the digest it was
//! asked by, or against `Docker-Content-Digest` when asked by tag; Docker's schema 1 is refused.

use std::io::Read;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::client::Repo;
use super::error::{Error, Result};
use super::reference::Reference;
use nua_oci::image::{media_type, Index, Platform};
use nua_oci::{Descriptor, Digest, ImageConfig, Manifest};

/// Docker's media types (image-manifest-v2-2 of distribution).
pub mod docker {
    pub const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const CONFIG: &str = "application/vnd.docker.container.image.v1+json";
}

/// Largest manifest or config accepted: the same bound as the image reader's.
pub const MAX_MANIFEST: u64 = nua_oci::reader::MAX_JSON;

const ACCEPTED: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Parse `os/arch[/variant]`.
pub fn parse_platform(value: &str) -> Result<Platform> {
    let parts: Vec<&str> = value.split('/').collect();
    let ok = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty());
    if !ok {
        return Err(Error::InvalidPlatform {
            value: value.to_owned(),
        });
    }
    Ok(Platform {
        os: parts[0].to_owned(),
        architecture: parts[1].to_owned(),
        variant: parts.get(2).map(|v| (*v).to_owned()),
    })
}

/// `os/arch[/variant]`.
pub fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// An image manifest resolved for one platform.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Describes `bytes`: media type, digest, size.
    pub descriptor: Descriptor,
    /// The manifest exactly as the registry sent it (its digest is over these bytes).
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
    /// Set when the reference named an index: the platforms it offers.
    pub index_platforms: Vec<String>,
}

/// Fetch the manifest of `reference`, narrowing an index to `platform`.
pub fn resolve(repo: &Repo<'_>, reference: &Reference, platform: &Platform) -> Result<Resolved> {
    let (descriptor, bytes) = fetch(
        repo,
        reference,
        &reference.target(),
        reference.digest.as_ref(),
    )?;
    if descriptor.media_type == media_type::INDEX || descriptor.media_type == docker::LIST {
        let index: Index = parse_json(reference, &bytes, "index")?;
        let available: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref().map(platform_string))
            .collect();
        let chosen = index
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| matches(p, platform)))
            .ok_or_else(|| Error::NoPlatform {
                reference: reference.to_string(),
                wanted: platform_string(platform),
                available: available.join(", "),
            })?;
        let (descriptor, bytes) = fetch(
            repo,
            reference,
            &chosen.digest.to_string(),
            Some(&chosen.digest),
        )?;
        let mut resolved = manifest(reference, descriptor, bytes)?;
        resolved.index_platforms = available;
        return Ok(resolved);
    }
    manifest(reference, descriptor, bytes)
}

/// Whether an index entry's platform is the wanted one; a variant counts only when asked for.
fn matches(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && have.architecture == want.architecture
        && (want.variant.is_none() || have.variant == want.variant)
}

fn manifest(reference: &Reference, descriptor: Descriptor, bytes: Vec<u8>) -> Result<Resolved> {
    let manifest: Manifest = parse_json(reference, &bytes, "manifest")?;
    if manifest.schema_version != 2 {
        return Err(Error::Manifest {
            reference: reference.to_string(),
            reason: format!(
                "schema version {} (Docker's schema 1 is not supported)",
                manifest.schema_version
            ),
        });
    }
    Ok(Resolved {
        descriptor,
        bytes,
        manifest,
        index_platforms: Vec::new(),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    reference: &Reference,
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Manifest {
        reference: reference.to_string(),
        reason: format!("the {what} is not valid JSON ({e})"),
    })
}

/// GET a small document (a manifest, a config) whole: up to `limit` bytes (one more tells it
/// is too large), its headers with it. A body that breaks or stalls (the low-speed limit)
/// while read is fetched again, with the client's backoff, as a connection error would be.
fn get_small(
    repo: &Repo<'_>,
    url: &reqwest::Url,
    build: &dyn Fn(reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder,
    limit: u64,
    not_found: &dyn Fn() -> Error,
) -> Result<(reqwest::header::HeaderMap, Vec<u8>)> {
    let retry = repo.retry_policy();
    let mut attempt = 0;
    loop {
        let resp = repo.send(Method::GET, url, build, true)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(not_found());
        }
        if !resp.status().is_success() {
            return Err(repo.unexpected(&Method::GET, url, resp));
        }
        let headers = resp.headers().clone();
        let mut bytes = Vec::new();
        let body = repo.low_speed().watch(resp);
        match body.take(limit + 1).read_to_end(&mut bytes) {
            Ok(_) => return Ok((headers, bytes)),
            Err(_) if attempt < retry.retries => {
                std::thread::sleep(retry.wait(attempt, None));
                attempt += 1;
            }
            Err(e) => {
                return Err(repo.protocol(format!(
                    "reading `{url}` failed after {attempt} retries: {e}"
                )))
            }
        }
    }
}

/// GET one manifest by tag or digest; its bytes checked against `expected` (or against
/// `Docker-Content-Digest` when asked by tag).
fn fetch(
    repo: &Repo<'_>,
    reference: &Reference,
    target: &str,
    expected: Option<&Digest>,
) -> Result<(Descriptor, Vec<u8>)> {
    let url = repo.url(&format!("manifests/{target}"));
    let not_found = || Error::NotFound {
        registry: repo.registry.clone(),
        reference: reference.to_string(),
    };
    let (headers, bytes) = get_small(
        repo,
        &url,
        &|r| r.header(ACCEPT, ACCEPTED),
        MAX_MANIFEST,
        &not_found,
    )?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(CONTENT_TYPE.as_str());
    let announced = header("docker-content-digest");
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(Error::Manifest {
            reference: reference.to_string(),
            reason: format!("larger than {MAX_MANIFEST} bytes"),
        });
    }
    let actual = Digest::of(&bytes);
    let expected = match (expected, announced.as_deref().map(str::parse::<Digest>)) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(Ok(d))) => Some(d),
        _ => None,
    };
    if let Some(expected) = expected {
        if expected != actual {
            return Err(Error::Digest {
                origin: format!("{}/{}", repo.registry, repo.repository),
                expected,
                actual,
            });
        }
    }
    // The media type: the manifest's own `mediaType`, else the Content-Type header.
    let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned));
    let media = declared
        .or(content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_owned()))
        .unwrap_or_else(|| media_type::MANIFEST.to_owned());
    let size = bytes.len() as u64;
    Ok((Descriptor::new(media, actual, size), bytes))
}

/// Read a small blob (a config) into memory, at most `limit` bytes, verified against its
/// descriptor.
pub fn fetch_blob_bytes(repo: &Repo<'_>, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>> {
    let url = repo.url(&format!("blobs/{}", descriptor.digest));
    let not_found = || Error::NotFound {
        registry: repo.registry.clone(),
        reference: format!("{}@{}", repo.repository, descriptor.digest),
    };
    let (_, bytes) = get_small(repo, &url, &|r| r, limit.min(descriptor.size), &not_found)?;
    let actual = Digest::of(&bytes);
    if actual != descriptor.digest {
        return Err(Error::Digest {
            origin: format!("{}/{}", repo.registry, repo.repository),
            expected: descriptor.digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Read a small blob (a config) into memory, verified against its descriptor.
pub fn fetch_json_blob(repo: &Repo<'_>, descriptor: &Descriptor) -> Result<ImageConfig> {
    let bytes = fetch_blob_bytes(repo, descriptor, MAX_MANIFEST)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        repo.protocol(format!(
            "the config `{}` is not an image config ({e})",
            descriptor.digest
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(platform_string(&p), "linux/arm64/v8");
        let amd64 = parse_platform("linux/amd64").unwrap();
        assert!(matches(&p, &parse_platform("linux/arm64").unwrap()));
        assert!(!matches(&amd64, &p));
        for bad in ["linux", "linux/", "a/b/c/d", ""] {
            let err = parse_platform(bad).unwrap_err().to_string();
            assert!(err.contains("os/arch"), "{err}");
        }
    }
}
