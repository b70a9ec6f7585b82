//! Sources that are not the app folder, through `nua-pack build`: a `src-url` archive served on
//! 127.0.0.1 (checked, cached, refused when wrong or missing) and a `git-url` repository made
//! with the real git, at a branch and in a `project` sub-folder.

mod common;

use std::path::Path;
use std::process::Command;

use common::app_build::{build_command, events, steps_made as made};
use common::archive::{serve_src_url_fixture, src_url_app, src_url_content};
use common::docker::{load, run_published, wait_for_http};
use common::*;
use serde_json::Value;

/// `nua-pack build APP -o OUT --json` with `cache`: its exit status, its JSON events and
/// its stderr.
fn build(app: &Path, cache: &Path, out: &Path) -> (bool, Vec<Value>, String) {
    let result = run(&mut build_command(app, cache, out, &[]));
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    (result.status.success(), events(&result.stdout), stderr)
}

/// A build that must fail: its stderr, once sure nothing was written.
fn refused(app: &Path, cache: &Path, out: &Path) -> String {
    let (ok, _, stderr) = build(app, cache, out);
    assert!(!ok, "the build succeeded");
    assert!(!out.exists(), "an image was written despite: {stderr}");
    assert_store_intact(cache);
    stderr
}

#[test]
fn a_src_url_archive_is_built_served_and_needs_no_network_once_cached() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let served = serve_src_url_fixture();
    let app = src_url_app(&work.path().join("app"), &served);
    let out = work.path().join("src-url.tar");
    let (ok, events, stderr) = build(&app, &cache, &out);
    assert!(ok, "{stderr}");
    // What a fetched source needs (pip, npm) is only known once fetched: the build step
    // looks, and here finds nothing to do.
    assert_eq!(made(&events), vec!["source", "build", "metadata"]);
    let result = events.last().unwrap().clone();
    // A build step ran above the source: the metadata, describing what it installed, stays
    // the top layer.
    let top: Vec<&str> = result["layers"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(3)
        .map(|l| l["step"].as_str().unwrap())
        .collect();
    assert_eq!(top, ["metadata", "build", "source"], "{result}");

    let _image = load(&out, "nua-src-url:1.0-1");
    let name = format!("nua-test-src-url-{}", std::process::id());
    let (_container, port) = run_published("nua-src-url:1.0-1", &name, 8080);
    let (status, body) = wait_for_http(port, "/index.html");
    assert!(status.contains("200"), "{status}");
    let expected = std::fs::read_to_string(src_url_content().join("index.html")).unwrap();
    assert_eq!(body, expected);
    // The first path component of the archive is stripped: `css/` is at the top.
    let (status, _) = wait_for_http(port, "/css/site.css");
    assert!(status.contains("200"), "{status}");

    // With the server gone, the checksummed source comes from the cache.
    drop(served);
    let (ok, again, stderr) = build(&app, &cache, &out);
    assert!(ok, "{stderr}");
    assert!(made(&again).is_empty(), "{:?}", made(&again));
    assert_eq!(
        again.last().unwrap()["manifest_digest"],
        result["manifest_digest"]
    );
}

/// Issue 13: a fifo in a source archive is left out, and the build says so, naming it.
#[test]
fn a_fifo_in_a_source_archive_is_left_out_with_a_warning() {
    use std::io::Write;
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let name = format!("hello-{}", common::archive::VERSION);
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all(&name, src_url_content()).unwrap();
    let mut fifo = tar::Header::new_ustar();
    fifo.set_path(format!("{name}/pipe")).unwrap();
    fifo.set_entry_type(tar::EntryType::Fifo);
    fifo.set_mode(0o644);
    fifo.set_size(0);
    fifo.set_cksum();
    tar.append(&fifo, &[][..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    let bytes = gz.finish().unwrap();
    let path = format!("/{name}.tar.gz");
    let server = common::archive::FileServer::start([(path.clone(), bytes.clone())].into());
    let served = common::archive::ServedArchive {
        url: server.url(&path),
        sha256: common::archive::sha256_hex(&bytes),
        server,
        bytes,
    };
    let app = src_url_app(&work.path().join("app"), &served);
    let out = work.path().join("fifo.tar");
    let (ok, events, stderr) = build(&app, &cache, &out);
    assert!(ok, "{stderr}");
    let warned = events.iter().any(|e| {
        e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("/pipe` (a fifo)") && m.contains(&served.url))
    });
    assert!(warned, "{events:?}\n{stderr}");
}

#[test]
fn a_wrong_checksum_or_a_missing_archive_is_refused_with_the_url() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let served = serve_src_url_fixture();
    let app = src_url_app(&work.path().join("app"), &served);
    let config = app.join("nua-config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let wrong = "0".repeat(64);
    std::fs::write(&config, text.replace(&served.sha256, &wrong)).unwrap();
    let out = work.path().join("out.tar");
    let stderr = refused(&app, &cache, &out);
    assert!(stderr.contains(&served.url), "{stderr}");
    assert!(
        stderr.contains(&format!("sha256:{}", served.sha256)),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("sha256:{wrong}")), "{stderr}");

    std::fs::write(&config, text.replace("hello-{version}", "gone-{version}")).unwrap();
    let stderr = refused(&app, &cache, &out);
    assert!(
        stderr.contains("gone-1.0.tar.gz") && stderr.contains("404"),
        "{stderr}"
    );
}

/// A git repository at `dir` with the static pages under `site/` on branch `release`.
fn git_repository(dir: &Path) {
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=Nua", "-c", "user.email=nua@example.org"])
                .args(args)
                .current_dir(dir),
        )
    };
    copy_tree(&src_url_content(), &dir.join("site"));
    std::fs::write(dir.join("README"), "not the app\n").unwrap();
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "site"]);
    git(&["branch", "release"]);
}

#[test]
fn a_git_url_is_built_at_its_branch_from_its_project_folder() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_repository(&repo);
    let app = work.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let config = |url: &str| {
        format!(
            "[metadata]\nid = \"from-git\"\nversion = \"1.0\"\n[build]\nbuilder = \"python\"\n\
             git-url = \"{url}\"\ngit-branch = \"release\"\nproject = \"site\"\n\
             [run]\nstart = \"python3 -m http.server 8080\"\n"
        )
    };
    let url = format!("file://{}", repo.display());
    std::fs::write(app.join("nua-config.toml"), config(&url)).unwrap();
    let out = work.path().join("git.tar");
    let (ok, events, stderr) = build(&app, &cache, &out);
    assert!(ok, "{stderr}");
    assert_eq!(made(&events), vec!["source", "build", "metadata"]);
    let layout = unpack(&out, work.path());
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
    let source_layer = index[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .nth(2)
        .unwrap();
    let listing = run_ok(
        Command::new("tar")
            .arg("-tzf")
            .arg(layout.join(source_layer.as_str().unwrap())),
    );
    assert!(listing.contains("nua/app/index.html"), "{listing}");
    assert!(
        !listing.contains("README") && !listing.contains(".git"),
        "{listing}"
    );

    let missing = format!("file://{}/nothing-here", work.path().display());
    std::fs::write(app.join("nua-config.toml"), config(&missing)).unwrap();
    std::fs::remove_file(&out).unwrap();
    let stderr = refused(&app, &cache, &out);
    assert!(stderr.contains("nothing-here"), "{stderr}");
}
