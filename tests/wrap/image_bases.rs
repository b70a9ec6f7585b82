//! Builders that are image references: an app built `FROM` an image of the registry, the
//! image's settings kept, Debian packages resolved against its dpkg database; hostile,
//! foreign and non-Debian images refused with one clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::registry::{Auth, Registry};
use super::common::*;
use nua_oci::{self as oci, ContainerConfig, ImageSpec};
use serde_json::Value;

/// Publish an image made of `layers` as `repo_tag` on `host` (an OCI layout copied with
/// skopeo, as a third party would publish it).
fn publish(
    host: &str,
    work: &Path,
    store: &oci::BlobStore,
    repo_tag: &str,
    spec: &ImageSpec,
) -> String {
    let image = oci::write_image(store, spec).unwrap();
    let layout = work.join(format!("layout-{}", repo_tag.replace(['/', ':'], "-")));
    let name = oci::ImageName::parse(repo_tag).unwrap();
    oci::write_layout_dir(store, &image, &[name], &layout).unwrap();
    let tag = repo_tag.rsplit(':').next().unwrap();
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{host}/{repo_tag}")),
    );
    image.manifest.digest.to_string()
}

/// An app folder whose builder is `builder`, with `extra` appended to its nua-config.
fn app_on(dir: &Path, builder: &str, extra: &str) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let config = format!(
        "[metadata]\nid = \"on-image\"\nversion = \"1.0\"\nrelease = 1\n\
         title = \"On an image\"\nauthor = \"Nua testers\"\ntagline = \"FROM a reference\"\n\
         website = \"https://nua.rocks/\"\ntags = [\"test\"]\n\n\
         [build]\nlicense = \"MIT\"\nbuilder = \"{builder}\"\n{extra}"
    );
    std::fs::write(app.join("nua-config.toml"), config).unwrap();
    std::fs::write(app.join("index.html"), "served from a registry base\n").unwrap();
    app
}

/// `nua-pack build APP` against `host`: its output, whatever the outcome.
fn build(app: &Path, host: &str, cache: &Path, out: &Path) -> std::process::Output {
    run(nua_pack()
        .arg("build")
        .arg(app)
        .args(["--insecure-registry", host, "--json", "-o"])
        .arg(out)
        .env("NUA_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "0"))
}

/// A one-layer image whose layer is `bytes` as they are (an uncompressed tar).
fn raw_layer_image(store: &oci::BlobStore, bytes: &[u8]) -> ImageSpec {
    let info = store.put_bytes(bytes).unwrap();
    let layer = oci::Layer {
        descriptor: oci::Descriptor::new(
            oci::image::media_type::LAYER_TAR,
            info.digest.clone(),
            info.size,
        ),
        diff_id: info.digest,
    };
    ImageSpec::new(vec![layer], ContainerConfig::default(), 0)
}

/// A one-layer image holding `files` (path, content).
fn files_image(store: &oci::BlobStore, files: &[(&str, &str)]) -> ImageSpec {
    let mut writer = oci::LayerWriter::new(store, oci::LayerOptions::default()).unwrap();
    for (path, content) in files {
        writer
            .add_bytes(path, &oci::Meta::new(0o644), content.as_bytes())
            .unwrap();
    }
    let layer = writer.finish().unwrap();
    ImageSpec::new(vec![layer], ContainerConfig::default(), 0)
}

/// The layers of Nua's `debian-bookworm` base, built in `cache`.
fn bookworm_layers(cache: &Path, store: &oci::BlobStore) -> Vec<oci::Layer> {
    let (_, built) = nua_build::base::build(
        &nua_build::base::Catalog::builtin().unwrap(),
        "debian-bookworm",
        None,
        store,
        &nua_build::base::BaseOptions {
            cache_dir: cache.to_path_buf(),
            layer: oci::LayerOptions::default(),
            registry: Default::default(),
            remote: Default::default(),
        },
        &mut nua_build::Silent,
    )
    .unwrap();
    built.layers.into_iter().map(|l| l.layer).collect()
}

/// A registry, a work folder and a cache (with Nua's bookworm base when `with_base`).
struct Setup {
    _registry: Registry,
    host: String,
    work: tempfile::TempDir,
    cache: PathBuf,
    store: oci::BlobStore,
}

fn setup(with_base: bool) -> Setup {
    test_env();
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let cache = if with_base {
        cache_with_base("debian-bookworm", work.path())
    } else {
        work.path().join("cache")
    };
    let store = oci::BlobStore::open(&cache).unwrap();
    Setup {
        host: registry.host(),
        _registry: registry,
        work,
        cache,
        store,
    }
}

#[test]
fn an_app_builds_on_a_registry_image_and_keeps_its_settings() {
    // Nua's own bookworm base, published as a company base would be: with variables and an
    // entry point of its own.
    let Setup {
        host,
        work,
        cache,
        store,
        _registry,
    } = setup(true);
    let config = ContainerConfig {
        entrypoint: Some(vec!["/usr/bin/env".into(), "FROM_ENTRYPOINT=1".into()]),
        env: vec![
            "COMPANY=acme".into(),
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ],
        ..ContainerConfig::default()
    };
    let spec = ImageSpec::new(bookworm_layers(&cache, &store), config, 1_700_000_000);
    let digest = publish(&host, work.path(), &store, "company/base:1", &spec);

    // Debian packages resolve against the image's own dpkg database; build commands see
    // its variables.
    let reference = format!("{host}/company/base:1");
    let app = app_on(
        work.path(),
        &reference,
        "build = \"echo $COMPANY > company.txt\"\n\n\
         [run]\npackages = [\"busybox\"]\n\
         start = \"busybox httpd -f -p 8080 -h /nua/app\"\n\n[port.web]\ncontainer = 8080\n",
    );
    let tarball = work.path().join("app.tar");
    let out = build(&app, &host, &cache, &tarball);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let steps: Vec<&str> = result["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["step"].as_str().unwrap())
        .collect();
    assert!(
        steps[0].starts_with(&format!("{reference} layer 1")),
        "{steps:?}"
    );
    assert!(steps.contains(&"packages: unpack 1 packages"), "{steps:?}");

    // The manifest names the image it is built on, by digest.
    let dir = unpack(&tarball, work.path());
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = |digest: &str| dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(manifest_digest)).unwrap()).unwrap();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.digest"],
        digest.as_str()
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.name"],
        reference.as_str()
    );

    // Docker runs it through the image's entry point, with its variables.
    let loaded = docker::load(&tarball, "nua-on-image:1.0-1");
    let (container, port) = docker::run_published(&loaded.0, &run::unique_name("image-base"), 8080);
    let (_, body) = docker::wait_for_http(port, "/index.html");
    assert_eq!(body, "served from a registry base\n");
    let (_, company) = docker::wait_for_http(port, "/company.txt");
    assert_eq!(company, "acme\n");
    let environ = docker::exec(&container, "tr '\\0' '\\n' < /proc/1/environ");
    assert!(environ.contains("FROM_ENTRYPOINT=1"), "{environ}");
    assert!(environ.contains("COMPANY=acme"), "{environ}");
}

#[test]
fn packages_on_an_image_that_is_not_debian_are_refused_saying_why() {
    // A root with a shell and a dpkg database, but whose os-release says it is another
    // distribution: Debian's archive is not its archive.
    let Setup {
        host,
        work,
        cache,
        store,
        _registry,
    } = setup(true);
    let release = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n";
    let mut spec = files_image(&store, &[("etc/os-release", release)]);
    let mut layers = bookworm_layers(&cache, &store);
    layers.append(&mut spec.layers);
    spec.layers = layers;
    publish(&host, work.path(), &store, "other/alpine:3", &spec);

    let reference = format!("{host}/other/alpine:3");
    let app = app_on(
        work.path(),
        &reference,
        "[run]\npackages = [\"curl\"]\nstart = \"true\"\n",
    );
    let out = build(&app, &host, &cache, &work.path().join("never.tar"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("key `run.packages`"), "{stderr}");
    assert!(stderr.contains("alpine-3.19.1"), "{stderr}");
    assert!(stderr.contains("dpkg"), "{stderr}");
    assert!(!work.path().join("never.tar").exists());

    // Without packages the same image is a fine base.
    let app = app_on(work.path(), &reference, "[run]\nstart = \"true\"\n");
    let out = build(&app, &host, &cache, &work.path().join("fine.tar"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_builder_images_are_refused_naming_the_entry() {
    let Setup {
        host,
        work,
        cache,
        store,
        _registry,
    } = setup(false);
    let outside = Path::new("/tmp/nua-hostile-symlink-target");
    let _ = std::fs::create_dir(outside);
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let cases = [
        ("rootfs-dotdot-escape.tar", "etc/../../escaped.txt"),
        ("rootfs-absolute-path.tar", "/etc/passwd"),
        ("rootfs-hardlink-outside.tar", "etc/shadow"),
        ("rootfs-symlink-escape.tar", "evil/pwned.txt"),
        ("rootfs-device-node.tar", "mem"),
    ];
    for (i, (fixture, entry)) in cases.iter().enumerate() {
        let bytes = std::fs::read(root().join("fixtures/hostile").join(fixture)).unwrap();
        let repo_tag = format!("hostile/case{i}:1");
        publish(
            &host,
            work.path(),
            &store,
            &repo_tag,
            &raw_layer_image(&store, &bytes),
        );
        let app_dir = work.path().join(format!("app{i}"));
        let reference = format!("{host}/{repo_tag}");
        let app = app_on(&app_dir, &reference, "[run]\nstart = \"true\"\n");
        let out = build(&app, &host, &cache, &app_dir.join("never.tar"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fixture}: {stderr}");
        assert!(
            stderr.contains("key `build.builder`") && stderr.contains(&reference),
            "{fixture}: {stderr}"
        );
        assert!(
            stderr.contains("refusing entry") && stderr.contains(entry),
            "{fixture}: {stderr}"
        );
        assert!(!app_dir.join("never.tar").exists());
    }
    assert!(!Path::new("/escaped.txt").exists() && !cache.join("escaped.txt").exists());
    assert!(!outside.join("pwned.txt").exists());
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
}

#[test]
fn an_image_for_another_platform_or_missing_is_one_clear_error() {
    let Setup {
        host,
        work,
        cache,
        store,
        _registry,
    } = setup(false);
    let mut spec = files_image(&store, &[("etc/os-release", "ID=debian\n")]);
    spec.architecture = "arm64".into();
    publish(&host, work.path(), &store, "other/arm:1", &spec);

    for (name, says) in [
        ("other/arm:1", "is an image for `linux/arm64`"),
        ("nowhere/base:1", "cannot pull"),
    ] {
        let reference = format!("{host}/{name}");
        let dir = work.path().join(name.replace(['/', ':'], "-"));
        let app = app_on(&dir, &reference, "[run]\nstart = \"true\"\n");
        let out = build(&app, &host, &cache, &dir.join("never.tar"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        // One line says where, what and why.
        assert!(
            stderr.lines().any(
                |line| line.contains("nua-config.toml`, key `build.builder`")
                    && line.contains(&format!("`{reference}`"))
                    && line.contains(says)
            ),
            "{stderr}"
        );
        assert!(!dir.join("never.tar").exists());
    }
}

/// A `base-images/` folder (with its `layers/` sibling) under `dir` holding `files`.
fn definitions(dir: &Path, files: &[(&str, String)]) -> PathBuf {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(dir.join("layers")).unwrap();
    dir.join("base-images")
}

/// `nua-pack base ARGS` with the definitions of `defs` and the cache `cache`.
fn base_command(args: &[&str], defs: &Path, cache: &Path) -> std::process::Output {
    run(nua_pack()
        .arg("base")
        .args(args)
        .env("NUA_BASE_IMAGES", defs)
        .env("NUA_CACHE_DIR", cache))
}

#[test]
fn a_base_definition_starts_from_an_image_that_its_lock_pins() {
    let Setup {
        host,
        work,
        cache,
        store,
        _registry,
    } = setup(true);
    let image = |company: &str| {
        let config = ContainerConfig {
            env: vec![
                format!("COMPANY={company}"),
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ],
            cmd: Some(vec!["/bin/sh".into()]),
            ..ContainerConfig::default()
        };
        ImageSpec::new(bookworm_layers(&cache, &store), config, 1_700_000_000)
    };
    let first = publish(&host, work.path(), &store, "company/base:1", &image("one"));
    let defs = definitions(
        &work.path().join("defs"),
        &[
            (
                "base-images/company.toml",
                format!(
                    "description = \"the company's base, with busybox\"\n\
                     image = \"{host}/company/base:1\"\nlayers = [\"extra\"]\n"
                ),
            ),
            (
                "layers/extra.toml",
                "description = \"busybox\"\npackages = [\"busybox\"]\n\
                 run = [\"busybox true && echo made > /etc/extra\"]\nenv = { EXTRA = \"1\" }\n"
                    .to_owned(),
            ),
        ],
    );
    let insecure = ["--insecure-registry", host.as_str()];

    // The lock pins the image by digest, and the packages resolved against its dpkg database.
    let out = base_command(
        &[&["lock", "company"][..], &insecure].concat(),
        &defs,
        &cache,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock = std::fs::read_to_string(defs.join("company.lock")).unwrap();
    assert!(
        lock.contains(&format!("image = \"{host}/company/base:1@{first}\"")),
        "{lock}"
    );
    assert!(lock.contains("name = \"busybox\""), "{lock}");
    assert!(
        !lock.contains("name = \"libc6\""),
        "the image has libc6:\n{lock}"
    );

    // The tag moves; the base is still built on the image the lock pins.
    publish(&host, work.path(), &store, "company/base:1", &image("two"));
    let tarball = work.path().join("company.tar");
    let args = [
        &[
            "build",
            "company",
            "--json",
            "-o",
            tarball.to_str().unwrap(),
        ][..],
        &insecure,
    ]
    .concat();
    let out = base_command(&args, &defs, &cache);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["locked"], true, "{result}");
    let loaded = docker::load(&tarball, "nua-base-company:latest");
    let shown = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        &loaded.0,
        "sh",
        "-c",
        "cat /etc/extra; echo $COMPANY $EXTRA",
    ]));
    assert_eq!(shown, "made\none 1\n");

    // A reference the registry does not have is one error naming the definition and key.
    let defs = definitions(
        &work.path().join("bad"),
        &[(
            "base-images/gone.toml",
            format!("description = \"x\"\nimage = \"{host}/nowhere/base:1\"\n"),
        )],
    );
    let out = base_command(&[&["build", "gone"][..], &insecure].concat(), &defs, &cache);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gone.toml`, key `image`: cannot pull")
            && stderr.contains(&format!("`{host}/nowhere/base:1`")),
        "{stderr}"
    );
}
