//! The runtime side on the real Docker Engine: `nua load`.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn nua() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nua"))
}

#[test]
fn nua_load_streams_a_built_tarball_into_docker() {
    let work = temp_dir();
    let tarball = work.path().join("image.tar");
    let built = run_ok(
        nua()
            .arg("build")
            .arg(fixture_app("static-site"))
            .arg("--output")
            .arg(&tarball)
            .arg("--json")
            .env("NUA_CACHE_DIR", cache_with_base("python", work.path())),
    );
    let built: Value = serde_json::from_str(built.lines().last().unwrap()).unwrap();

    // `--full`: every layer, whatever Docker already has (in an archive written from what
    // was checked: the same blobs, without the OCI index).
    let loaded = run_ok(nua().arg("load").arg(&tarball).arg("--json").arg("--full"));
    let _image = LoadedImage("nua-static-site:1.0-1".into());
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert_eq!(loaded["tags"][0], "nua-static-site:1.0-1");
    assert_eq!(loaded["image_id"], built["config_digest"]);
    let sent = loaded["bytes_sent"].as_u64().unwrap();
    let size = std::fs::metadata(&tarball).unwrap().len();
    assert!(
        sent * 10 > size * 9 && sent < size + 64 * 1024,
        "{sent} of {size}"
    );
    assert_eq!(loaded["layers_sent"], loaded["layers"]);

    // Loaded again, thin: Docker has every layer, so only `manifest.json` and the config go.
    let again = run_ok(nua().arg("load").arg(&tarball).arg("--json"));
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["image_id"], built["config_digest"]);
    assert_eq!(again["layers_sent"], 0);
    assert!(again["bytes_sent"].as_u64().unwrap() < 64 * 1024, "{again}");
}

#[test]
fn nua_load_refuses_what_is_not_an_image() {
    test_env();
    let work = temp_dir();
    let bogus = work.path().join("not-an-image.tar");
    std::fs::write(&bogus, b"this is not a tar archive").unwrap();
    let out = run(nua().arg("load").arg(&bogus));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not-an-image.tar"), "{stderr}");
    assert!(stderr.contains("not a tar archive"), "{stderr}");
}

#[test]
fn nua_load_without_a_daemon_says_how_to_start_one() {
    let work = temp_dir();
    let out = run(nua().arg("load").arg(work.path().join("x.tar")).env(
        "DOCKER_HOST",
        format!("unix://{}/no.sock", work.path().display()),
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker daemon"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: start Docker"), "{stderr}");
}

#[test]
fn nua_load_refuses_a_tampered_layer_before_docker_sees_it() {
    let work = temp_dir();
    let tarball = work.path().join("image.tar");
    run_ok(
        nua()
            .arg("build")
            .arg(fixture_app("static-site"))
            .arg("--output")
            .arg(&tarball)
            .arg("-q")
            .env("NUA_CACHE_DIR", cache_with_base("python", work.path())),
    );
    let (tampered, digest) = tamper_last_layer(&tarball, work.path());

    let out = run(nua().arg("load").arg(&tampered));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    assert!(
        stderr.contains(&digest),
        "the error does not name the layer: {stderr}"
    );
}

/// The layers (paths in the tarball) and DiffIDs of the image in unpacked tarball `layout`.
fn layers_and_diff_ids(layout: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let config = manifest[0]["Config"].as_str().unwrap();
    let config: Value =
        serde_json::from_slice(&std::fs::read(layout.join(config)).unwrap()).unwrap();
    (
        strings(&manifest[0]["Layers"]),
        strings(&config["rootfs"]["diff_ids"]),
    )
}

#[test]
fn nua_load_of_a_rebuilt_image_is_thin() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let app = work.path().join("app");
    copy_tree(&fixture_app("static-site"), &app);
    let tag = format!("nua-test-thin-load-{}:1", std::process::id());
    let build = |out: &std::path::Path| -> Value {
        let stdout = run_ok(
            nua()
                .arg("build")
                .arg(&app)
                .arg("--output")
                .arg(out)
                .arg("-t")
                .arg(&tag)
                .arg("--json")
                .env("NUA_CACHE_DIR", &cache),
        );
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let _image = LoadedImage(tag.clone());

    let first = work.path().join("first.tar");
    build(&first);
    let loaded = run_ok(nua().arg("load").arg(&first).arg("--json"));
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert_eq!(loaded["tags"][0], tag.as_str());

    // A line of the page no other image has: the layers from the source up are new.
    let page = app.join("index.html");
    let unique = format!(
        "Thin load {} {}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let text = std::fs::read_to_string(&page).unwrap();
    let edited = text.replace("Hello from a Nua static site", &unique);
    assert_ne!(edited, text);
    std::fs::write(&page, edited).unwrap();
    let second = work.path().join("second.tar");
    let built = build(&second);

    let loaded = run_ok(nua().arg("load").arg(&second).arg("--json"));
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert_eq!(loaded["tags"][0], tag.as_str(), "{loaded}");
    assert_eq!(loaded["image_id"], built["config_digest"], "{loaded}");
    assert!(loaded.get("fell_back").is_none(), "{loaded}");

    let (_, before) = layers_and_diff_ids(&unpack(&first, &work.path().join("first")));
    let layout = unpack(&second, &work.path().join("second"));
    let (layers, after) = layers_and_diff_ids(&layout);
    assert_eq!(layers.len(), after.len());
    let same = before
        .iter()
        .zip(&after)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(same > 0 && same < after.len(), "{before:?}\n{after:?}");
    assert_eq!(loaded["layers"], after.len(), "{loaded}");
    assert_eq!(loaded["layers_sent"], after.len() - same, "{loaded}");
    let new_bytes: u64 = layers[same..]
        .iter()
        .map(|l| std::fs::metadata(layout.join(l)).unwrap().len())
        .sum();
    let sent = loaded["bytes_sent"].as_u64().unwrap();
    let size = std::fs::metadata(&second).unwrap().len();
    assert!(
        sent < new_bytes + (1 << 20),
        "{sent} bytes sent for {new_bytes} bytes of new layers"
    );
    assert!(
        sent * 10 < size,
        "{sent} bytes sent of a {size} bytes tarball"
    );

    let name = format!("nua-test-thin-load-{}", std::process::id());
    let (_container, port) = common::docker::run_published(&tag, &name, 8080);
    let (status, body) = common::docker::wait_for_http(port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert!(body.contains(&unique), "{body}");
}

/// A Docker API that refuses the first `refusals` loads (as an engine that cannot use a
/// partial archive does: status 200, the error inside the stream) and accepts the next,
/// recording the size of every load body. Docker 20.10 here accepts every thin archive, so
/// the fallback can only be driven by a daemon that refuses; everything else the load does
/// (verification, archive, the checks after) runs as against the real one.
struct RefusingDocker {
    acceptor: common::http::Acceptor,
    loads: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl RefusingDocker {
    fn start(refusals: usize, tag: &str, config: &str, diff_ids: Vec<String>) -> RefusingDocker {
        use common::http::{Framing, Head};
        use std::io::{BufRead, BufReader, Read, Write};
        let loads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tag, config) = (tag.to_owned(), config.to_owned());
        let seen = loads.clone();
        let acceptor = common::http::Acceptor::start(move |conn| {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut conn = conn;
            while let Ok(Some(head)) = Head::read(&mut reader) {
                let mut body = 0u64;
                match head.request_framing() {
                    Framing::Chunked => loop {
                        let mut size = String::new();
                        reader.read_line(&mut size).unwrap();
                        let size = u64::from_str_radix(size.trim(), 16).unwrap();
                        let mut chunk = Vec::new();
                        (&mut reader)
                            .take(size + 2)
                            .read_to_end(&mut chunk)
                            .unwrap();
                        body += size;
                        if size == 0 {
                            break;
                        }
                    },
                    Framing::Length(n) => {
                        std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink()).unwrap();
                    }
                    _ => {}
                }
                let (method, target) = head.method_and_target();
                let loaded = seen.lock().unwrap().len() > refusals;
                let (status, json) = if target.ends_with("/_ping") {
                    (200, "OK".to_owned())
                } else if target.ends_with("/version") {
                    (
                        200,
                        r#"{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10.24"}"#
                            .to_owned(),
                    )
                } else if method == "POST" && target.contains("/images/load") {
                    let mut loads = seen.lock().unwrap();
                    loads.push(body);
                    if loads.len() <= refusals {
                        (200, r#"{"errorDetail":{"message":"refused for the test"},"error":"refused for the test"}"#.to_owned() + "\n")
                    } else {
                        (200, format!("{{\"stream\":\"Loaded image: {tag}\\n\"}}\n"))
                    }
                } else if target.contains("/images/json") {
                    (200, "[]".to_owned())
                } else if target.contains("/images/") && loaded {
                    let layers = serde_json::to_string(&diff_ids).unwrap();
                    (
                        200,
                        format!(
                            r#"{{"Id":"{config}","RepoTags":["{tag}"],"RootFS":{{"Type":"layers","Layers":{layers}}}}}"#
                        ),
                    )
                } else {
                    (404, r#"{"message":"No such image"}"#.to_owned())
                };
                let reason = if status == 200 { "OK" } else { "Not Found" };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                    json.len()
                );
                if conn.write_all(response.as_bytes()).is_err() {
                    break;
                }
            }
        });
        RefusingDocker { acceptor, loads }
    }

    fn host(&self) -> String {
        format!("tcp://{}", self.acceptor.addr())
    }
}

/// A small image tarball made with the library, and its config digest and DiffIDs.
fn small_image(dir: &std::path::Path, tag: &str) -> (std::path::PathBuf, String, Vec<String>) {
    use nua_oci::{
        write_image, write_tarball, BlobStore, ContainerConfig, ImageName, ImageSpec, LayerOptions,
        LayerWriter, Meta,
    };
    let store = BlobStore::open(dir.join("store")).unwrap();
    let mut layers = Vec::new();
    for i in 0..2 {
        let mut layer = LayerWriter::new(&store, LayerOptions::default()).unwrap();
        layer
            .add_bytes(&format!("file{i}"), &Meta::new(0o644), &noise(i, 4096))
            .unwrap();
        layers.push(layer.finish().unwrap());
    }
    let image = write_image(
        &store,
        &ImageSpec::new(layers, ContainerConfig::default(), 1_700_000_000),
    )
    .unwrap();
    let tarball = dir.join("small.tar");
    write_tarball(&store, &image, &[ImageName::parse(tag).unwrap()], &tarball).unwrap();
    let archive = nua_oci::ImageArchive::open(&tarball).unwrap();
    let info = archive.describe().unwrap();
    let diff_ids = info
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(ToString::to_string)
        .collect();
    (tarball, info.config_descriptor.digest.to_string(), diff_ids)
}

#[test]
fn a_refused_thin_load_falls_back_to_every_layer() {
    let work = temp_dir();
    let tag = "nua-fallback:1";
    let (tarball, config, diff_ids) = small_image(work.path(), tag);
    let docker = RefusingDocker::start(1, tag, &config, diff_ids);

    let out = run_ok(
        nua()
            .arg("load")
            .arg(&tarball)
            .arg("--json")
            .env("DOCKER_HOST", docker.host()),
    );
    let loaded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loaded["fell_back"], "refused for the test", "{loaded}");
    assert_eq!(loaded["image_id"], config.as_str());
    assert_eq!(loaded["layers_sent"], loaded["layers"]);
    let loads = docker.loads.lock().unwrap().clone();
    assert_eq!(
        loads.len(),
        2,
        "one refused load, then the full one: {loads:?}"
    );
    assert_eq!(loaded["bytes_sent"].as_u64(), Some(loads[1]));
}

#[test]
fn a_load_refused_twice_names_the_reason() {
    let work = temp_dir();
    let tag = "nua-refused:1";
    let (tarball, config, diff_ids) = small_image(work.path(), tag);
    let docker = RefusingDocker::start(2, tag, &config, diff_ids);

    let out = run(nua()
        .arg("load")
        .arg(&tarball)
        .env("DOCKER_HOST", docker.host()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Docker refused the image"), "{stderr}");
    assert!(stderr.contains("refused for the test"), "{stderr}");
    assert_eq!(docker.loads.lock().unwrap().len(), 2);
}
