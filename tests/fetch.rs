//! `build::fetch` against real components: an HTTP server on 127.0.0.1 serving the `src-url`
//! fixture, and repositories made with the `git` command line, cloned by `file://` URL.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::archive;
use common::*;
use nua_build::fetch::{self, FetchError, Origin};
use nua_oci::http::HttpKind;
use nua_oci::BlobStore;

/// A blob store and a work folder in one temporary folder.
struct Dirs {
    _tmp: tempfile::TempDir,
    store: BlobStore,
    work: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = temp_dir();
    Dirs {
        store: BlobStore::open(tmp.path().join("cache")).unwrap(),
        work: tmp.path().join("work"),
        _tmp: tmp,
    }
}

/// Every file under `dir`, relative, with its content, sorted.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_str().unwrap());
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

fn url_origin(url: &str, checksum: Option<&str>) -> Origin {
    Origin::Url {
        url: url.to_owned(),
        checksum: checksum.map(str::to_owned),
    }
}

fn leftovers(work: &Path) -> usize {
    std::fs::read_dir(work).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn archive_is_downloaded_verified_and_stripped() {
    let served = archive::serve_src_url_fixture();
    let d = dirs();
    let origin = url_origin(&served.url, Some(&served.sha256));
    let identity = format!("sha256:{}", served.sha256);
    assert_eq!(fetch::pin(&origin).unwrap(), Some(identity.clone()));
    let fetched = fetch::fetch(&origin, &d.work, &d.store).unwrap();
    assert_eq!(fetched.identity(), identity);
    assert_eq!(files(fetched.root()), files(&archive::src_url_content()));
    assert!(fetched.root().starts_with(&d.work));
    let blob = d.store.path(&identity.parse().unwrap());
    assert_eq!(std::fs::read(blob).unwrap(), served.bytes);
}

#[test]
fn a_wrong_checksum_is_refused_and_nothing_is_kept() {
    let served = archive::serve_src_url_fixture();
    let d = dirs();
    let wrong = "0".repeat(64);
    let err = fetch::fetch(&url_origin(&served.url, Some(&wrong)), &d.work, &d.store).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, FetchError::Checksum { .. }), "{message}");
    assert!(message.contains(&served.url), "{message}");
    assert!(message.contains(&format!("sha256:{wrong}")), "{message}");
    assert!(
        message.contains(&format!("sha256:{}", served.sha256)),
        "{message}"
    );
    assert_store_intact(d.store.root());
    let blobs = std::fs::read_dir(d.store.root().join("blobs/sha256")).unwrap();
    assert_eq!(blobs.count(), 0, "a refused archive must not be kept");
    assert_eq!(leftovers(&d.store.root().join("tmp")), 0);
    assert_eq!(leftovers(&d.work), 0, "no source folder may be left");
}

#[test]
fn a_missing_archive_is_named() {
    let served = archive::serve_src_url_fixture();
    let d = dirs();
    let url = served.server.url("/hello-9.9.tar.gz");
    let err = fetch::fetch(&url_origin(&url, None), &d.work, &d.store).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            FetchError::Download {
                kind: HttpKind::Status(404),
                ..
            }
        ),
        "{message}"
    );
    let hint = err.hint().unwrap_or_default();
    assert!(
        message.contains(&url) && hint.contains("check `src-url`"),
        "{message}\nhint: {hint}"
    );
    assert_eq!(leftovers(&d.work), 0);
}

#[test]
fn a_checksummed_archive_is_fetched_once() {
    let served = archive::serve_src_url_fixture();
    let d = dirs();
    let origin = url_origin(&served.url, Some(&served.sha256));
    let first = fetch::fetch(&origin, &d.work, &d.store).unwrap();
    let expected = files(first.root());
    drop(first);
    let hits = served.server.hits();
    drop(served.server);
    let again = fetch::fetch(&origin, &d.work, &d.store).unwrap();
    assert_eq!(files(again.root()), expected);
    assert_eq!(hits, 1, "the first fetch downloads once");
}

#[test]
fn an_archive_without_checksum_is_named_by_its_digest() {
    let served = archive::serve_src_url_fixture();
    let d = dirs();
    let origin = url_origin(&served.url, None);
    assert_eq!(fetch::pin(&origin).unwrap(), None);
    let fetched = fetch::fetch(&origin, &d.work, &d.store).unwrap();
    assert_eq!(fetched.identity(), format!("sha256:{}", served.sha256));
}

#[test]
fn the_src_url_fixture_loads_with_the_served_url() {
    let served = archive::serve_src_url_fixture();
    let d = dirs();
    let app = archive::src_url_app(&d.work.join("app"), &served);
    let loaded = nua_config::load(&app, &Default::default()).unwrap();
    let origin = Origin::of(&loaded.config);
    assert_eq!(origin, url_origin(&served.url, Some(&served.sha256)));
    let fetched = fetch::fetch(&origin, &d.work, &d.store).unwrap();
    let project = fetch::project_dir(fetched.root(), loaded.config.build.project.as_deref());
    assert!(project.unwrap().join("index.html").is_file());
}

/// A repository with two commits: `v1.0` (an annotated tag) on the first, `main` and `HEAD`
/// on the second.
struct Repo {
    _tmp: tempfile::TempDir,
    url: String,
    first: String,
    second: String,
}

fn repo() -> Repo {
    let tmp = temp_dir();
    let dir = tmp.path().join("repo");
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=Nua", "-c", "user.email=test@nua.rocks"])
                .arg("-C")
                .arg(&dir)
                .args(args)
                .env("GIT_CONFIG_GLOBAL", "/dev/null"),
        )
        .trim()
        .to_owned()
    };
    std::fs::create_dir_all(dir.join("web")).unwrap();
    git(&["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join("web/index.html"), "one").unwrap();
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "one"]);
    git(&["tag", "-a", "v1.0", "-m", "release 1.0"]);
    let first = git(&["rev-parse", "HEAD"]);
    std::fs::write(dir.join("web/index.html"), "two").unwrap();
    git(&["commit", "--quiet", "-am", "two"]);
    let second = git(&["rev-parse", "HEAD"]);
    Repo {
        url: format!("file://{}", dir.display()),
        first,
        second,
        _tmp: tmp,
    }
}

fn git_origin(url: &str, branch: Option<&str>) -> Origin {
    Origin::Git {
        url: url.to_owned(),
        branch: branch.map(str::to_owned),
    }
}

#[test]
fn git_branches_and_tags_are_cloned_at_their_pinned_commit() {
    let repo = repo();
    let d = dirs();
    for (branch, commit, content) in [
        (Some("v1.0"), &repo.first, "one"),
        (Some("main"), &repo.second, "two"),
        (None, &repo.second, "two"),
    ] {
        let origin = git_origin(&repo.url, branch);
        let pinned = fetch::pin(&origin).unwrap().unwrap();
        assert_eq!(pinned, format!("git:{commit}"), "{branch:?}");
        let fetched = fetch::fetch_pinned(&origin, Some(&pinned), &d.work, &d.store).unwrap();
        assert_eq!(fetched.identity(), pinned);
        let web = fetch::project_dir(fetched.root(), Some("web")).unwrap();
        assert_eq!(
            std::fs::read_to_string(web.join("index.html")).unwrap(),
            content
        );
        assert!(!fetched.root().join(".git").exists());
    }
    // A branch that moved since it was pinned is not built under the old pin.
    let origin = git_origin(&repo.url, Some("main"));
    let stale = format!("git:{}", repo.first);
    let err = fetch::fetch_pinned(&origin, Some(&stale), &d.work, &d.store).unwrap_err();
    assert!(matches!(err, FetchError::GitMoved { .. }), "{err}");
    assert_eq!(leftovers(&d.work), 0);
}

#[test]
fn a_missing_repository_or_branch_is_named() {
    let repo = repo();
    let d = dirs();
    let nowhere = format!("{}-missing", repo.url);
    let missing = git_origin(&nowhere, None);
    for err in [
        fetch::pin(&missing).unwrap_err(),
        fetch::fetch(&missing, &d.work, &d.store).unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(matches!(err, FetchError::GitRepository { .. }), "{message}");
        assert!(message.contains(&nowhere), "{message}");
        assert!(
            message.contains("does not appear to be a git repository"),
            "{message}"
        );
    }
    let no_branch = git_origin(&repo.url, Some("release-9"));
    for err in [
        fetch::pin(&no_branch).unwrap_err(),
        fetch::fetch(&no_branch, &d.work, &d.store).unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(matches!(err, FetchError::GitReference { .. }), "{message}");
        assert!(
            message.contains("no branch or tag `release-9`"),
            "{message}"
        );
        assert!(message.contains(&repo.url), "{message}");
    }
    assert_eq!(leftovers(&d.work), 0);
}
