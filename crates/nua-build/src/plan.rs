//! The plan of a `build`-method app above its base: which Debian packages it keeps and which
//! it needs only while building, how its dependencies are installed, where its source comes
//! from, which commands build and test it. Made from the nua-config and, for a local source,
//! what the app folder holds (`requirements.txt`, `package-lock.json`, …); nothing runs.

use std::path::{Path, PathBuf};

use super::Error;
use nua_config::{Loaded, OneOrMany};

/// Nua meta-packages (`meta-packages`, a provider's `connector`) and the Debian packages
/// they stand for: the client programs and the runtime library a driver links to.
const META_PACKAGES: &[(&str, &[&str])] = &[
    ("mariadb-client", &["mariadb-client", "libmariadb3"]),
    ("mysql-client", &["default-mysql-client", "libmariadb3"]),
    ("postgres-client", &["postgresql-client", "libpq5"]),
    ("redis-client", &["redis-tools"]),
    ("sqlite", &["sqlite3", "libsqlite3-0"]),
];

pub use super::fetch::Origin;

/// A dependency install that needs only a few manifest files, so it runs before the source
/// layer and a source edit does not redo it (like `COPY requirements.txt` then `RUN pip
/// install` in a well-written Dockerfile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependencies {
    /// What it is, for people (`pip install -r requirements.txt`).
    pub title: String,
    /// Files of the source folder the commands read, bound read-only under [`DEPS_DIR`].
    pub files: Vec<String>,
    /// Commands run as `nua` in `/nua/app`.
    pub commands: Vec<String>,
    /// A stand-alone `requirements.txt` (its path under [`DEPS_DIR`]), which uv may install
    /// instead of `commands` (see [`crate::uv`]).
    pub requirements: Option<String>,
}

/// Where the manifest files of [`Dependencies`] are seen by its commands.
pub const DEPS_DIR: &str = "/run/nua/deps";

/// One command of the build step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub command: String,
    /// `before-build` commands prepare the system and run as root; the others as `nua`.
    pub as_root: bool,
}

impl Script {
    fn nua(command: impl Into<String>) -> Script {
        Script {
            command: command.into(),
            as_root: false,
        }
    }
}

/// What a `build`-method app adds to its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPlan {
    /// Debian packages kept in the image: `run.packages`, `meta-packages`, connectors.
    pub packages: Vec<String>,
    /// Debian packages present only while building (`build.packages`).
    pub build_packages: Vec<String>,
    pub dependencies: Option<Dependencies>,
    pub origin: Origin,
    /// The sub-folder of the source that is the app (`project`).
    pub project: Option<String>,
    /// The build step's commands (empty: no build step).
    pub build: Vec<Script>,
    /// The app's `nua/` folder, merged into `/nua/` and home of `build.py`.
    pub nua_dir: Option<PathBuf>,
    /// `test` commands, run in the finished image.
    pub tests: Vec<String>,
    /// The image's command: the script made from `[run] start`, else a start script of the
    /// app's `nua/scripts/`; `None` when there is neither (the build refuses that).
    pub start: Option<Vec<String>>,
}

/// Start scripts an app may carry in `nua/scripts/` instead of `[run] start`, and how
/// each is run.
const START_SCRIPTS: &[(&str, &[&str])] = &[
    ("start", &[]),
    ("start.py", &["python3"]),
    ("start.sh", &["/bin/sh"]),
];

/// The image's command for `app` (see [`AppPlan::start`]).
fn start_command(app: &Loaded, nua_dir: Option<&Path>) -> Option<Vec<String>> {
    if !app.config.start_commands().is_empty() {
        return Some(vec![format!("/{}", super::metadata::START_SCRIPT)]);
    }
    let scripts = nua_dir?.join("scripts");
    START_SCRIPTS.iter().find_map(|(name, runner)| {
        scripts.join(name).is_file().then(|| {
            let mut cmd: Vec<String> = runner.iter().map(|r| r.to_string()).collect();
            cmd.push(format!("/nua/scripts/{name}"));
            cmd
        })
    })
}

fn list(value: &Option<OneOrMany>) -> Vec<String> {
    value
        .as_ref()
        .map(OneOrMany::to_vec)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|entry| {
            // `packages = "a b c"` is common in the corpus: words, not one name.
            entry
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn commands(value: &Option<OneOrMany>) -> Vec<String> {
    value
        .as_ref()
        .map(OneOrMany::to_vec)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !c.trim().is_empty())
        .collect()
}

/// The Debian packages of meta-package `name`.
pub fn meta_package(name: &str) -> Result<&'static [&'static str], Error> {
    META_PACKAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, packages)| *packages)
        .ok_or_else(|| Error::MetaPackage {
            name: name.to_owned(),
            known: META_PACKAGES.iter().map(|(n, _)| n.to_string()).collect(),
        })
}

impl AppPlan {
    /// Whether the build step runs the app's `nua/build.py`.
    pub fn uses_build_py(&self) -> bool {
        self.build
            .iter()
            .any(|s| s.command == format!("python3 {NUA_DIR_MOUNT}/build.py"))
    }

    /// The plan of `app`.
    pub fn new(app: &Loaded) -> Result<AppPlan, Error> {
        let config = &app.config;
        let build = &config.build;
        let mut packages = list(&config.run.as_ref().and_then(|r| r.packages.clone()));
        let mut metas = list(&build.meta_packages);
        for provider in &config.provider {
            metas.extend(list(&provider.connector));
        }
        for meta in metas {
            packages.extend(meta_package(&meta)?.iter().map(|p| p.to_string()));
        }
        packages.sort();
        packages.dedup();
        let mut build_packages = list(&build.packages);
        build_packages.sort();
        build_packages.dedup();
        build_packages.retain(|p| !packages.contains(p));

        let origin = Origin::of(&app.config);
        let nua_dir = Some(app.root.join("nua")).filter(|d| d.is_dir());
        let mut scripts: Vec<Script> = commands(&build.before_build)
            .into_iter()
            .map(|command| Script {
                command,
                as_root: true,
            })
            .collect();
        let pip_install = list(&build.pip_install);
        if !pip_install.is_empty() {
            scripts.push(Script::nua(format!(
                "pip install {}",
                pip_install.join(" ")
            )));
        }
        let explicit = commands(&build.build);
        let build_py = nua_dir.as_ref().filter(|d| d.join("build.py").is_file());
        let mut dependencies = None;
        if !explicit.is_empty() {
            scripts.extend(explicit.into_iter().map(Script::nua));
        } else if build_py.is_some() {
            scripts.push(Script::nua(format!("python3 {NUA_DIR_MOUNT}/build.py")));
        } else if origin == Origin::Local {
            // A `project` that is not a folder of the app is refused when building.
            let project = build
                .project
                .as_deref()
                .filter(|p| !p.is_empty() && *p != ".");
            let src =
                super::fetch::project_dir(&app.root, project).unwrap_or_else(|_| app.root.clone());
            let (deps, after) = detect(&src);
            dependencies = deps;
            scripts.extend(after.into_iter().map(Script::nua));
        } else {
            // The tree is only known once fetched: detect then, in the build step.
            scripts.push(Script::nua(DETECT_AND_INSTALL));
        }
        Ok(AppPlan {
            packages,
            build_packages,
            dependencies,
            origin,
            project: build.project.clone(),
            build: scripts,
            tests: commands(&build.test),
            start: start_command(app, nua_dir.as_deref()),
            nua_dir,
        })
    }

    /// The plan as (step, what it does) lines, for `--dry-run`.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        if !self.packages.is_empty() {
            lines.push(("packages".into(), self.packages.join(" ")));
        }
        if !self.build_packages.is_empty() {
            lines.push((
                "build-packages".into(),
                format!("{} (only while building)", self.build_packages.join(" ")),
            ));
        }
        if let Some(deps) = &self.dependencies {
            lines.push(("dependencies".into(), deps.title.clone()));
        }
        let project = self
            .project
            .as_ref()
            .map(|p| format!(", sub-folder `{p}`"))
            .unwrap_or_default();
        let source = match &self.origin {
            Origin::Local => {
                "the app folder (without what .nuaignore and .dockerignore exclude)".to_owned()
            }
            Origin::Url { url, checksum } => match checksum {
                Some(sum) => format!("{url} (sha256 {sum})"),
                None => format!("{url} (no src-checksum: not verified)"),
            },
            Origin::Git { url, branch } => {
                format!(
                    "{url} at {}",
                    branch.as_deref().unwrap_or("its default branch")
                )
            }
        };
        lines.push(("source".into(), format!("{source}{project} → /nua/app")));
        for script in &self.build {
            let user = if script.as_root { "root" } else { "nua" };
            lines.push(("build".into(), format!("{} (as {user})", script.command)));
        }
        if self.nua_dir.is_some() {
            lines.push((
                "nua-files".into(),
                "the app's nua/ folder merged into /nua/ (but its nua-config and build.py)".into(),
            ));
        }
        lines.push((
            "metadata".into(),
            "/nua/metadata/nua-config.json and sbom.json, /nua/scripts/start from [run] start"
                .into(),
        ));
        for test in &self.tests {
            lines.push(("test".into(), test.clone()));
        }
        let start = match &self.start {
            Some(cmd) => cmd.join(" "),
            None => "none: the build will fail (add `start` under `[run]`, or a \
                     `nua/scripts/start` script)"
                .to_owned(),
        };
        lines.push(("command".into(), start));
        lines
    }
}

/// Where the app's `nua/` folder is seen by `build.py`.
pub const NUA_DIR_MOUNT: &str = "/run/nua/app-nua";

/// The build command of a fetched source, whose files are only known once fetched: the same
/// detection as [`detect`], in the shell.
const DETECT_AND_INSTALL: &str = "\
if [ -f requirements.txt ]; then pip install -r requirements.txt; fi; \
if [ -f pyproject.toml ] || [ -f setup.py ]; then pip install .; fi; \
if [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; then npm ci --omit=dev; \
elif [ -f yarn.lock ]; then npx --yes yarn@1 install --frozen-lockfile --production \
--mutex file:/var/cache/nua/yarn/.mutex; \
elif [ -f package.json ]; then npm install --omit=dev; fi";

/// What a local source asks for, from its files: a dependency install that can run before
/// the source (only manifests needed), and the build commands that need the whole source.
pub fn detect(src: &Path) -> (Option<Dependencies>, Vec<String>) {
    // Links are not followed: a manifest must be a file of the app.
    let has = |name: &str| {
        std::fs::symlink_metadata(src.join(name)).is_ok_and(|m| m.file_type().is_file())
    };
    let mut after = Vec::new();
    let mut deps = None;
    if has("requirements.txt") {
        let text = std::fs::read_to_string(src.join("requirements.txt")).unwrap_or_default();
        if requirements_stand_alone(&text) {
            deps = Some(Dependencies {
                // uv, where it installs what pip would (`crate::uv`).
                title: "uv pip install -r requirements.txt (pip where the base has no \
                        /nua/venv, or with NUA_PIP_INSTALLER=pip)"
                    .into(),
                files: vec!["requirements.txt".into()],
                commands: vec![format!("pip install -r {DEPS_DIR}/requirements.txt")],
                requirements: Some(format!("{DEPS_DIR}/requirements.txt")),
            });
        } else {
            after.push("pip install -r requirements.txt".to_owned());
        }
    }
    if has("pyproject.toml") || has("setup.py") {
        after.push("pip install .".to_owned());
    }
    let package_json = std::fs::read_to_string(src.join("package.json")).ok();
    let own_scripts = package_json.as_deref().map(npm_scripts).unwrap_or_default();
    let lock = ["package-lock.json", "npm-shrinkwrap.json"]
        .into_iter()
        .find(|name| has(name));
    if let (Some(lock), Some(_)) = (lock, &package_json) {
        if own_scripts.build {
            // The build needs the dev dependencies; the image keeps only the others.
            after.push("npm ci && npm run build && npm prune --omit=dev".into());
        } else if own_scripts.install || deps.is_some() {
            after.push("npm ci --omit=dev".into());
        } else {
            let mut files = vec!["package.json".to_owned(), lock.to_owned()];
            let copy: Vec<String> = files.iter().map(|f| format!("{DEPS_DIR}/{f}")).collect();
            // `.npmrc` often holds registry tokens: read where it is bound, never copied.
            let userconfig = if has(".npmrc") {
                files.push(".npmrc".into());
                format!(" --userconfig {DEPS_DIR}/.npmrc")
            } else {
                String::new()
            };
            deps = Some(Dependencies {
                title: "npm ci --omit=dev".into(),
                commands: vec![format!(
                    "cp {} . && npm ci --omit=dev{userconfig}",
                    copy.join(" ")
                )],
                files,
                requirements: None,
            });
        }
    } else if has("yarn.lock") && package_json.is_some() {
        // Two builds may share yarn's cache: its mutex keeps them from corrupting it.
        after.push(
            "npx --yes yarn@1 install --frozen-lockfile --production \
             --mutex file:/var/cache/nua/yarn/.mutex"
                .into(),
        );
    } else if package_json.is_some() {
        after.push("npm install --omit=dev".into());
    }
    (deps, after)
}

/// Whether a requirements file names only packages from the index, so it can be installed
/// before the source is there: no `-r`/`-c` includes, editable or local paths.
fn requirements_stand_alone(text: &str) -> bool {
    const INDEX_OPTIONS: &[&str] = &[
        "-i",
        "--index-url",
        "--extra-index-url",
        "--trusted-host",
        "--only-binary",
        "--no-binary",
        "--prefer-binary",
        "--pre",
    ];
    const HASH_OPTIONS: &[&str] = &["--hash", "--require-hashes"];
    // `\` continues a line (pip-compile puts each `--hash` on a line of its own).
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .all(|l| {
            let first = l.split([' ', '=']).next().unwrap_or_default();
            let local = l.starts_with('.') || l.starts_with('/') || l.starts_with("file:");
            let option = INDEX_OPTIONS.contains(&first) || HASH_OPTIONS.contains(&first);
            !local && (!first.starts_with('-') || option)
        })
}

#[derive(Default)]
struct NpmScripts {
    /// The package has its own `preinstall`/`install`/`postinstall`/`prepare` scripts,
    /// which need the source.
    install: bool,
    /// It has a `build` script.
    build: bool,
}

fn npm_scripts(package_json: &str) -> NpmScripts {
    let value: serde_json::Value = serde_json::from_str(package_json).unwrap_or_default();
    let scripts = value.get("scripts").and_then(|s| s.as_object());
    let has = |name: &str| scripts.is_some_and(|s| s.contains_key(name));
    NpmScripts {
        install: ["preinstall", "install", "postinstall", "prepare"]
            .iter()
            .any(|n| has(n)),
        build: has("build"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn requirements_alone_install_before_the_source() {
        let dir = folder(&[("requirements.txt", "flask==3.0.3\n# comment\n")]);
        let (deps, after) = detect(dir.path());
        assert_eq!(deps.unwrap().files, vec!["requirements.txt"]);
        assert!(after.is_empty());
    }

    #[test]
    fn hashed_requirements_install_before_the_source() {
        let text =
            "flask==3.0.3 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n--require-hashes\n";
        let dir = folder(&[("requirements.txt", text)]);
        let (deps, _) = detect(dir.path());
        assert!(deps.is_some(), "{text}");
    }

    #[test]
    fn requirements_with_local_paths_wait_for_the_source() {
        let dir = folder(&[("requirements.txt", "-e .\nflask\n")]);
        let (deps, after) = detect(dir.path());
        assert!(deps.is_none());
        assert_eq!(after, vec!["pip install -r requirements.txt"]);
    }

    #[test]
    fn npm_lock_installs_before_the_source_unless_the_package_has_scripts() {
        let plain = folder(&[
            ("package.json", r#"{"dependencies":{"ms":"2.1.3"}}"#),
            ("package-lock.json", "{}"),
        ]);
        let (deps, after) = detect(plain.path());
        assert_eq!(
            deps.unwrap().files,
            vec!["package.json", "package-lock.json"]
        );
        assert!(after.is_empty());
        let built = folder(&[
            ("package.json", r#"{"scripts":{"build":"tsc"}}"#),
            ("package-lock.json", "{}"),
        ]);
        let (deps, after) = detect(built.path());
        assert!(deps.is_none());
        assert_eq!(
            after,
            vec!["npm ci && npm run build && npm prune --omit=dev"]
        );
    }

    #[test]
    fn unknown_meta_packages_name_the_known_ones() {
        let err = meta_package("oracle-client").unwrap_err().to_string();
        assert!(
            err.contains("oracle-client") && err.contains("postgres-client"),
            "{err}"
        );
    }
}
