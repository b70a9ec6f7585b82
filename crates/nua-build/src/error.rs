//! Errors of the build.

use std::path::PathBuf;

use nua_oci as oci;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Base(#[from] super::base::BaseError),
    #[error("cannot pull `{image}`, the image this app wraps")]
    Wrap {
        image: String,
        #[source]
        source: Box<nua_registry::Error>,
    },
    #[error("cannot add the app source `{}` to its layer", path.display())]
    SourceLayer {
        path: PathBuf,
        #[source]
        source: oci::Error,
    },
    #[error("cannot write the image to `{}`", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: oci::Error,
    },
    #[error("cannot read the ignore file `{}`", path.display())]
    Ignore {
        path: PathBuf,
        #[source]
        source: ignore::Error,
    },
    #[error("cannot write the layer cache in `{}`", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{tag}` is not a valid image name")]
    Tag {
        tag: String,
        #[source]
        source: oci::Error,
    },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the Debian packages of step `{step}` ({names})")]
    Packages {
        step: String,
        names: String,
        #[source]
        source: Box<nua_debian::Error>,
    },
    #[error(
        "`{}`: key `{key}`: `{base}` is not a Debian image (its os-release says `{distro}`), \
         and Nua installs packages from Debian's archive into a Debian dpkg database",
        file.display()
    )]
    PackagesNeedDebian {
        file: PathBuf,
        key: &'static str,
        base: String,
        distro: String,
    },
    #[error("there is no meta-package `{name}` (known: {})", known.join(", "))]
    MetaPackage { name: String, known: Vec<String> },
    #[error("the `project` folder `{project}` is not in the source (looked for `{}`)", path.display())]
    Project { path: PathBuf, project: String },
    #[error("the sandbox cannot run step `{step}`")]
    Sandbox {
        step: String,
        #[source]
        source: Box<nua_sandbox::Error>,
    },
    #[error("step `{step}` failed: `{command}` ended with {status}; its last lines:\n{tail}")]
    StepFailed {
        step: String,
        command: String,
        status: String,
        tail: String,
    },
    #[error(
        "test `{command}` failed ({status}), so no image was written; its last lines:\n{tail}"
    )]
    TestFailed {
        command: String,
        status: String,
        tail: String,
    },
    #[error(
        "`{}` has no start command: add `start = \"…\"` under `[run]` (the command that runs the app, e.g. `gunicorn app:app`), or a `nua/scripts/start` script to the app",
        file.display()
    )]
    NoStart { file: PathBuf },
    #[error(transparent)]
    Fetch {
        source: Box<super::fetch::FetchError>,
    },
    #[error(
        "cannot get uv {version}, the installer of the `dependencies` step{}: {reason}",
        at(url)
    )]
    Uv {
        version: &'static str,
        url: String,
        reason: String,
    },
    #[error("cannot make the SBOM of the image")]
    Sbom {
        #[source]
        source: Box<super::sbom::SbomError>,
    },
    #[error(transparent)]
    Oci(oci::Error),
}

/// `, from `URL``, when there is one.
fn at(url: &str) -> String {
    match url {
        "" => String::new(),
        url => format!(", from `{url}`"),
    }
}

impl Error {
    /// What the user can do about it, when there is something: the hint of the error of
    /// another module it wraps (the CLI prints it once, after the chain of causes).
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Base(e) => e.hint(),
            Error::Wrap { source, .. } => source.hint(),
            Error::Packages { source, .. } => source.hint(),
            Error::Sandbox { source, .. } => source.hint(),
            Error::Fetch { source } => source.hint(),
            Error::StepFailed { command, .. } if command.contains(super::uv::TARGET) => Some(
                "uv installed the requirements.txt; to see whether pip installs it, build \
                 with NUA_PIP_INSTALLER=pip"
                    .to_owned(),
            ),
            Error::Uv { .. } => Some(
                "check that this machine reaches files.pythonhosted.org, or install with pip: \
                 NUA_PIP_INSTALLER=pip"
                    .to_owned(),
            ),
            Error::PackagesNeedDebian { .. } => Some(
                "build on a Debian-based image (`python:3.12-slim`, `node:20-bookworm`) or a \
                 base of `nua-pack base list`, or install them in the image you build on"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::FetchError;

    #[test]
    fn a_wrapped_error_gives_its_hint() {
        let err = Error::Fetch {
            source: Box::new(FetchError::GitReference {
                url: "https://h/r.git".into(),
                reference: "v9".into(),
                stderr: String::new(),
            }),
        };
        assert!(!err.to_string().contains("hint:"), "{err}");
        assert_eq!(
            err.hint().as_deref(),
            Some("check `git-branch` (a branch or tag name)")
        );
        let err = Error::Base(crate::base::BaseError::Install(
            crate::layers::InstallError::Sandbox {
                what: "app".into(),
                step: "packages".into(),
                source: Box::new(nua_sandbox::Error::Unsupported {
                    what: "no user namespaces".into(),
                    fix: "enable them".into(),
                }),
            },
        ));
        assert_eq!(err.hint().as_deref(), Some("enable them"));
    }

    #[test]
    fn uv_not_fetched_names_where_from_and_how_to_do_without() {
        let err = Error::Uv {
            version: "0.13.9",
            url: "https://files.pythonhosted.org/p/uv.whl".into(),
            reason: "HTTP status 404 (after 0 retries)".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot get uv 0.13.9, the installer of the `dependencies` step, from \
             `https://files.pythonhosted.org/p/uv.whl`: HTTP status 404 (after 0 retries)"
        );
        assert!(err.hint().unwrap().contains("NUA_PIP_INSTALLER=pip"));
        let failed = |command: String| Error::StepFailed {
            step: "dependencies".into(),
            command,
            status: "exit status: 1".into(),
            tail: String::new(),
        };
        let by_uv = failed(crate::uv::install_command("/run/nua/deps/requirements.txt"));
        assert!(by_uv.hint().unwrap().contains("NUA_PIP_INSTALLER=pip"));
        assert_eq!(
            failed("pip install -r requirements.txt".into()).hint(),
            None
        );
    }
}
