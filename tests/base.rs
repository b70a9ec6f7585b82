//! Base images bootstrapped from Debian's archive: listed, built from their locks, loaded and
//! run on Docker, reproducible, and usable by the sandbox for pip against PyPI.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn base_build(name: &str, cache: &Path, output: &Path) -> Value {
    let stdout = run_ok(
        nua_pack()
            .args(["base", "build", name, "--json", "--output"])
            .arg(output)
            .env("NUA_CACHE_DIR", cache),
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("base build --json printed no JSON ({e}):\n{stdout}"))
}

#[test]
fn every_base_is_listed_with_a_fresh_lock() {
    let stdout = run_ok(nua_pack().args(["base", "list", "--json"]));
    let list: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "debian-bookworm",
            "debian-trixie",
            "mariadb-10.11",
            "nginx",
            "node-18",
            "node-20",
            "postgres-15",
            "python",
            "redis-7",
            "ruby"
        ]
    );
    for base in &list {
        assert_eq!(base["lock"], "fresh", "{base}");
    }
    let python = &list[7];
    assert_eq!(python["from"], "debian-bookworm");
    assert_eq!(python["layers"], serde_json::json!(["python"]));
}

#[test]
fn an_unknown_base_names_the_known_ones() {
    let work = temp_dir();
    let out = run(nua_pack()
        .args(["base", "build", "elixir-1.15"])
        .env("NUA_CACHE_DIR", work.path()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`elixir-1.15`") && stderr.contains("debian-bookworm"),
        "{stderr}"
    );
}

/// The bootstrapped base runs on Docker: dpkg's database is whole, the nua user and tree
/// are there, and apt-get installs a package from the archive.
#[test]
fn debian_bookworm_runs_on_docker_and_apt_get_installs() {
    let cache = shared_base("debian-bookworm");
    let work = temp_dir();
    let tarball = work.path().join("base.tar");
    let tag = format!("nua-test-base-{}:latest", std::process::id());
    let stdout = run_ok(
        nua_pack()
            .args([
                "base",
                "build",
                "debian-bookworm",
                "--json",
                "-t",
                &tag,
                "--output",
            ])
            .arg(&tarball)
            .env("NUA_CACHE_DIR", &cache),
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    // `locked` unless Debian dropped a locked version since the lock was made.
    assert_eq!(result["locked"], built_from_lock("debian-bookworm", &cache));
    assert!(
        result["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["cached"] == true),
        "a second build takes every layer from the cache: {result}"
    );
    run_ok(Command::new("docker").arg("load").arg("-i").arg(&tarball));
    let _image = LoadedImage(tag.clone());
    // A package the lock takes from bookworm-security: installed at least at that version
    // (a later one when the mirror has dropped it and the build fell back to the archive).
    let lock = nua_build::base::Lock::parse(
        &std::fs::read_to_string(root().join("base-images/debian-bookworm.lock")).unwrap(),
        "debian-bookworm.lock",
    )
    .unwrap();
    let security = lock.steps[0]
        .packages
        .iter()
        .find(|p| p.suite == "bookworm-security")
        .expect("the lock takes at least one package from bookworm-security");
    let script = format!(
        "set -e
        test -z \"$(dpkg --audit)\"
        dpkg-query -W -f '${{db:Status-Abbrev}}\\n' | sort | uniq -c
        id nua
        stat -c '%U %a %n' /nua /nua/app /nua/metadata
        dpkg --compare-versions \"$(dpkg-query -W -f '${{Version}}' {name})\" ge '{version}'
        echo security fix installed
        grep -h '^Suites:' /etc/apt/sources.list.d/debian.sources
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends hello >/dev/null
        hello",
        name = security.name,
        version = security.version
    );
    let out = run_ok(Command::new("docker").args(["run", "--rm", &tag, "sh", "-c", &script]));
    assert!(out.contains("security fix installed"), "{out}");
    assert!(
        out.contains("Suites: bookworm bookworm-updates\nSuites: bookworm-security\n"),
        "the image's apt sources name the three suites: {out}"
    );
    let statuses: Vec<&str> = out.lines().filter(|l| l.contains("ii")).collect();
    assert_eq!(statuses.len(), 1, "every package is installed: {out}");
    assert!(
        out.contains("uid=1000(nua) gid=1000(nua)"),
        "the nua user: {out}"
    );
    assert!(out.contains("nua 755 /nua/app"), "{out}");
    assert!(out.contains("root 755 /nua/metadata"), "{out}");
    assert!(
        out.contains("Hello, world!"),
        "apt-get install hello: {out}"
    );
}

/// The same lock, bootstrapped twice in two empty caches, gives the same image; the first
/// time after a bootstrap killed half-way, which leaves nothing corrupt behind.
#[test]
fn two_bootstraps_from_the_same_lock_give_the_same_digest() {
    let work = temp_dir();
    let cache_a = work.path().join("cache-a");
    let mut child = nua_pack()
        .args(["base", "build", "debian-bookworm", "-q"])
        .env("NUA_CACHE_DIR", &cache_a)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_store_intact(&cache_a);
    // What a build killed in a sandbox step leaves, as if a day ago: collected by the next.
    let stale = cache_a.join("sandbox/roots/root-killed");
    std::fs::create_dir_all(stale.join("upper/etc")).unwrap();
    std::fs::write(stale.join("upper/etc/half-written"), "x").unwrap();
    run_ok(Command::new("touch").args(["-d", "2 days ago"]).arg(&stale));

    let a = base_build(
        "debian-bookworm",
        &work.path().join("cache-a"),
        &work.path().join("a.tar"),
    );
    let b = base_build(
        "debian-bookworm",
        &work.path().join("cache-b"),
        &work.path().join("b.tar"),
    );
    assert!(b["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["cached"] == false));
    assert_eq!(a["manifest_digest"], b["manifest_digest"]);
    assert_store_intact(&work.path().join("cache-a"));
    assert!(
        !stale.exists(),
        "an abandoned sandbox root was not collected"
    );
    // What is left is at most the root of the step the kill interrupted: recent, so kept
    // (another build could be using it) until it has been abandoned for a day.
    for root in std::fs::read_dir(cache_a.join("sandbox/roots")).unwrap() {
        let age = root
            .unwrap()
            .metadata()
            .unwrap()
            .modified()
            .unwrap()
            .elapsed();
        assert!(age.unwrap() < std::time::Duration::from_secs(3600));
    }
}

/// The python base in the sandbox: a venv and `pip install` from PyPI, through this
/// machine's TLS-inspecting proxy thanks to the host's CA bundle bound in read-only.
#[test]
fn python_base_pip_installs_from_pypi_in_the_sandbox() {
    use nua_build::base::{build_base, BaseOptions, Catalog, Plan};
    use nua_sandbox::{Bind, Command as SandboxCommand, Sandbox};

    let cache = shared_base("python");
    let store = nua_oci::BlobStore::open(&cache).unwrap();
    let catalog = Catalog::builtin().unwrap();
    let plan = Plan::new(&catalog, "python", None, &store).unwrap();
    let options = BaseOptions {
        cache_dir: cache.clone(),
        layer: nua_oci::LayerOptions {
            compression: nua_oci::Compression::default(),
            source_date_epoch: plan.source_date_epoch,
        },
        registry: Default::default(),
        remote: Default::default(),
    };
    let base = build_base(&plan, &store, &options, &mut nua_build::Silent).unwrap();
    assert!(base.layers.iter().all(|l| l.cached));
    assert_eq!(base.env["VIRTUAL_ENV"], "/nua/venv");

    let sandbox = Sandbox::new(&cache.join("sandbox"), &store).unwrap();
    let layers: Vec<_> = base.layers.iter().map(|l| l.layer.clone()).collect();
    let mut root = sandbox.root(&layers).unwrap();
    let ca = "/etc/ssl/certs/ca-certificates.crt";
    let mut command = SandboxCommand::shell(
        "set -e; python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'import venv'; \
         pip install --quiet --no-cache-dir six; \
         python -c 'import six, sys; print(sys.prefix, six.__version__)'",
    );
    command.env = vec![
        ("PATH".into(), "/nua/venv/bin:/usr/bin:/bin".into()),
        ("HOME".into(), "/nua".into()),
        ("PIP_CERT".into(), "/run/nua/ca.crt".into()),
        ("SSL_CERT_FILE".into(), "/run/nua/ca.crt".into()),
    ];
    command.user = (1000, 1000);
    command.mounts = vec![Bind::read_only(ca, "/run/nua/ca.crt")];
    let mut lines = Vec::new();
    let status = root
        .run(&command, &mut |_, line| lines.push(line.to_owned()))
        .unwrap();
    assert!(status.success(), "{status:?}: {lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("/nua/venv ")),
        "pip installed into the base's venv: {lines:#?}"
    );
    let layer = root.commit(&options.layer).unwrap();
    // What pip wrote is in the layer, owned by the user who ran it.
    let blob = store.open_blob(&layer.descriptor.digest).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let six: Vec<(String, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().unwrap().ends_with("site-packages/six.py"))
        .map(|e| {
            let path = e.path().unwrap().display().to_string();
            (path, e.header().uid().unwrap())
        })
        .collect();
    assert_eq!(six.len(), 1, "{six:?}");
    assert!(six[0].0.starts_with("nua/venv/lib/python3"), "{six:?}");
    assert_eq!(six[0].1, 1000);
}

/// Without root: the unprivileged user the test setup creates (with subordinate ids)
/// bootstraps the python base in its own empty cache, and gets the image root gets.
#[test]
fn a_rootless_bootstrap_gives_the_image_root_gets() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return;
    }
    let cache = shared_base("python");
    let as_root = run_ok(
        nua_pack()
            .args(["base", "build", "python", "--json", "-o"])
            .arg(temp_dir().path().join("root.tar"))
            .env("NUA_CACHE_DIR", &cache),
    );
    let as_root: Value = serde_json::from_str(as_root.trim()).unwrap();

    // A folder of its own, and a copy of nua-pack it can run wherever the checkout is.
    let user = "nua-rootless";
    let home = tempfile::Builder::new()
        .prefix("nua-rootless-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let exe = home.path().join("nua-pack");
    std::fs::copy(env!("CARGO_BIN_EXE_nua-pack"), &exe).unwrap();
    run_ok(Command::new("chown").args(["-R", user]).arg(home.path()));
    let stdout = run_ok(
        Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .arg(&exe)
            .args(["base", "build", "python", "--json", "-o"])
            .arg(home.path().join("python.tar"))
            .env("HOME", home.path())
            .env("NUA_CACHE_DIR", home.path().join("cache"))
            .env_remove("TMPDIR")
            .current_dir(home.path()),
    );
    let rootless: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(rootless["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["cached"] == false));
    assert_eq!(rootless["manifest_digest"], as_root["manifest_digest"]);
    // The unpacked layers in its cache belong to the user's subordinate ids: root removes
    // them (the temporary folder's own cleanup runs as root too, but says nothing if it fails).
    run_ok(Command::new("rm").arg("-rf").arg(home.path().join("cache")));
}

/// trixie differs from bookworm where a bootstrap feels it: `base-files` ships the merged-/usr
/// symlinks itself, and `useradd` is no longer Essential (the `nua` layer installs it).
#[test]
fn debian_trixie_bootstraps_and_runs_on_docker() {
    let cache = shared_base("debian-trixie");
    let work = temp_dir();
    let tarball = work.path().join("trixie.tar");
    let tag = format!("nua-test-trixie-{}:latest", std::process::id());
    run_ok(
        nua_pack()
            .args([
                "base",
                "build",
                "debian-trixie",
                "-q",
                "-t",
                &tag,
                "--output",
            ])
            .arg(&tarball)
            .env("NUA_CACHE_DIR", &cache),
    );
    run_ok(Command::new("docker").arg("load").arg("-i").arg(&tarball));
    let _image = LoadedImage(tag.clone());
    let script = "set -e
        test -z \"$(dpkg --audit)\"
        cut -d. -f1 /etc/debian_version
        readlink /bin
        id nua";
    let out = run_ok(Command::new("docker").args(["run", "--rm", &tag, "sh", "-c", script]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "13",
            "usr/bin",
            "uid=1000(nua) gid=1000(nua) groups=1000(nua)"
        ],
        "{out}"
    );
}

/// A copy of `base-images/` and `layers/` in `dir`, for `NUA_BASE_IMAGES`; returns the copy
/// of `base-images/`.
fn base_images_copy(dir: &Path) -> std::path::PathBuf {
    let images = dir.join("base-images");
    copy_tree(&root().join("base-images"), &images);
    copy_tree(&root().join("layers"), &dir.join("layers"));
    images
}

fn outdated_json(images: &Path) -> (Option<i32>, Vec<Value>, String) {
    let out = run(nua_pack()
        .args(["base", "outdated", "debian-bookworm", "--json"])
        .env("NUA_BASE_IMAGES", images)
        .env("NUA_CACHE_DIR", shared_cache()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let list = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("base outdated --json printed no JSON ({e}):\n{stdout}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), list, stderr)
}

/// `base outdated` against a lock made now into a copy, then aged by hand (so the test does
/// not depend on what Debian publishes): an older version is listed, a missing security fix
/// first and with exit 1.
#[test]
fn outdated_lists_missing_security_fixes_first_and_fails_on_them() {
    use nua_build::base::Lock;
    let work = temp_dir();
    let images = base_images_copy(work.path());
    run_ok(
        nua_pack()
            .args(["base", "lock", "debian-bookworm"])
            .env("NUA_BASE_IMAGES", &images)
            .env("NUA_CACHE_DIR", shared_cache()),
    );
    let path = images.join("debian-bookworm.lock");
    let mut lock = Lock::parse(&std::fs::read_to_string(&path).unwrap(), "lock").unwrap();
    let suites: Vec<&str> = lock.indexes.iter().map(|i| i.suite.as_str()).collect();
    assert_eq!(
        suites,
        ["bookworm", "bookworm-updates", "bookworm-security"]
    );

    let packages = &mut lock.steps[0].packages;
    let plain = packages.iter().position(|p| p.suite == "bookworm").unwrap();
    packages[plain].version = "0~old".into();
    std::fs::write(&path, lock.to_text()).unwrap();
    let (code, list, stderr) = outdated_json(&images);
    assert_eq!(code, Some(0), "no security fix is missing: {stderr}");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        list[0]["package"],
        lock.steps[0].packages[plain].name.as_str()
    );
    assert_eq!(list[0]["locked"], "0~old");
    assert_eq!(list[0]["security"], false);

    let packages = &mut lock.steps[0].packages;
    let fix = packages
        .iter()
        .position(|p| p.suite == "bookworm-security")
        .unwrap();
    packages[fix].version = "0~old".into();
    std::fs::write(&path, lock.to_text()).unwrap();
    let (code, list, stderr) = outdated_json(&images);
    assert_eq!(code, Some(1), "a security fix is missing: {stderr}");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        list[0]["package"],
        lock.steps[0].packages[fix].name.as_str()
    );
    assert_eq!(list[0]["suite"], "bookworm-security");
    assert_eq!(list[0]["security"], true);
    assert_eq!(list[1]["security"], false);
    assert!(
        stderr.contains("hint: run `nua-pack base lock debian-bookworm`"),
        "{stderr}"
    );
}

/// A suite the mirror lacks: one error naming the definition and the key.
#[test]
fn a_suite_the_mirror_lacks_names_the_definition_and_the_key() {
    let work = temp_dir();
    let images = base_images_copy(work.path());
    let def = images.join("debian-bookworm.toml");
    let text = std::fs::read_to_string(&def).unwrap().replacen(
        "[bootstrap]\n",
        "[bootstrap]\nsuites = [\"bookworm\", \"bookworm-backports-nonexistent\"]\n",
        1,
    );
    std::fs::write(&def, text).unwrap();
    let out = run(nua_pack()
        .args(["base", "lock", "debian-bookworm"])
        .env("NUA_BASE_IMAGES", &images)
        .env("NUA_CACHE_DIR", shared_cache()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("`{}`: key `suites`", def.display()))
            && stderr.contains("no suite `bookworm-backports-nonexistent`"),
        "{stderr}"
    );
}
