//! The runtime side on the real Docker Engine: `nua load`, and commands streamed in and out
//! of a container through the engine (`Engine::exec_stream`).

mod common;

use std::process::Command;

use common::*;
use nua_runtime::{ContainerSpec, Docker, Engine as _, Exec};
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

/// An image of the tests' Debian root filesystem (`sh`, `cat`, `yes`, `sleep`: enough to run
/// commands in), imported under a tag of this test, removed when dropped.
fn shell_image(test: &str) -> LoadedImage {
    let tag = format!("nua-test-shell-{test}:{}", std::process::id());
    run_ok(
        Command::new("docker")
            .arg("import")
            .arg(test_env())
            .arg(&tag),
    );
    LoadedImage(tag)
}

/// A container of `image` named after `test`, started through the engine with no network,
/// sleeping a minute (the image has no command of its own); removed when dropped.
fn sleeper(engine: &Docker, image: &LoadedImage, test: &str) -> Container {
    let name = format!("nua-test-runtime-{test}-{}", std::process::id());
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.0.clone(),
        network: Some("none".into()),
        command: Some(vec!["sleep".into(), "60".into()]),
        ..ContainerSpec::default()
    };
    let container = Container(name.clone());
    engine.create_container(&spec).unwrap();
    engine.start_container(&name).unwrap();
    container
}

fn engine() -> Docker {
    test_env();
    Docker::connect().unwrap()
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// `exec_stream` on a thread of its own, with an engine of its own: what `run` returns, or a
/// panic naming `what` when it has not returned within `secs` (the test's container guard
/// then ends the command and the thread).
fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    run: impl FnOnce(&Docker) -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(&Docker::connect().unwrap()));
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} has not returned after {secs} s"))
}

/// `len` bytes of noise read in pieces: blocks of 1 MiB that differ by their first 8 bytes
/// (their index), so a piece lost, repeated or moved changes the hash. Hashes and counts
/// what it gives.
struct Source {
    block: Vec<u8>,
    len: u64,
    given: std::sync::Arc<std::sync::atomic::AtomicU64>,
    hasher: sha2::Sha256,
}

const BLOCK: usize = 1 << 20;

impl std::io::Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        use std::sync::atomic::Ordering;
        let given = self.given.load(Ordering::SeqCst);
        let offset = (given % BLOCK as u64) as usize;
        if offset == 0 {
            self.block[..8].copy_from_slice(&(given / BLOCK as u64).to_le_bytes());
        }
        let n = buf
            .len()
            .min(BLOCK - offset)
            .min(usize::try_from(self.len - given).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[offset..offset + n]);
        self.hasher.update(&buf[..n]);
        self.given.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

/// Hashes and counts what it is given, and the most the source was ahead of it: what the
/// way between them held at most.
struct Sink {
    written: u64,
    source: std::sync::Arc<std::sync::atomic::AtomicU64>,
    most_ahead: u64,
    hasher: sha2::Sha256,
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let given = self.source.load(std::sync::atomic::Ordering::SeqCst);
        self.most_ahead = self.most_ahead.max(given - self.written);
        self.hasher.update(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn exec_stream_passes_200_mb_through_cat_intact_with_little_held() {
    use sha2::Digest;
    let engine = engine();
    let image = shell_image("stream-cat");
    let container = sleeper(&engine, &image, "stream-cat");
    let len = 200 * 1024 * 1024 + 12_345;
    let given = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut source = Source {
        block: noise(7, BLOCK),
        len,
        given: given.clone(),
        hasher: sha2::Sha256::new(),
    };
    let mut sink = Sink {
        written: 0,
        source: given,
        most_ahead: 0,
        hasher: sha2::Sha256::new(),
    };

    let name = container.0.clone();
    let what = "streaming 200 MB through `cat`";
    let (status, source, sink) = within(120, what, move |engine| {
        let cat = Exec::new(["cat"]);
        let status = engine.exec_stream(&name, &cat, Some(&mut source), &mut sink);
        (status.unwrap(), source, sink)
    });
    assert_eq!(
        status.exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(status.stderr.is_empty());
    assert_eq!(sink.written, len);
    assert_eq!(
        hex::encode(sink.hasher.finalize()),
        hex::encode(source.hasher.finalize())
    );
    // Everything between the source and the sink (our pieces, Docker's pipes, the socket)
    // held at most a few megabytes, never the stream.
    assert!(
        sink.most_ahead < 32 << 20,
        "{} bytes were read before their output came",
        sink.most_ahead
    );
}

#[test]
fn exec_stream_gives_env_and_user_and_reports_exit_code_and_stderr() {
    let engine = engine();
    let image = shell_image("stream-env");
    let container = sleeper(&engine, &image, "stream-env");

    let exec = Exec {
        command: strings(&["sh", "-c", r#"printf %s:%s "$SECRET" "$(id -u)""#]),
        env: strings(&["SECRET=hunter2 with spaces"]),
        user: Some("65534".into()),
    };
    let mut out = Vec::new();
    let status = engine
        .exec_stream(&container.0, &exec, None, &mut out)
        .unwrap();
    assert_eq!(
        status.exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out), "hunter2 with spaces:65534");
    // For this command only: the container's own environment does not have it.
    let mut env = Vec::new();
    engine
        .exec_stream(&container.0, &Exec::new(["env"]), None, &mut env)
        .unwrap();
    assert!(!String::from_utf8_lossy(&env).contains("hunter2"));

    // A command that ends without reading its input, which has no end: its exit code and
    // stderr come back, nothing waits for the input.
    let name = container.0.clone();
    let (status, out) = within(60, "a command that exits at once", move |engine| {
        let mut out = Vec::new();
        let exec = Exec::new(["sh", "-c", "echo oops >&2; exit 3"]);
        let mut endless = std::io::repeat(b'y');
        let status = engine.exec_stream(&name, &exec, Some(&mut endless), &mut out);
        (status.unwrap(), out)
    });
    assert_eq!(status.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&status.stderr), "oops\n");
    assert!(out.is_empty());
}

/// Takes 1 MB, then fails as a pipe whose reader is gone.
struct Gone {
    taken: usize,
}

impl std::io::Write for Gone {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.taken >= 1_000_000 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        self.taken += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `exec_stream` of `command` (fed endless input when `fed`) into a writer that fails after
/// 1 MB: its error, and what the writer took.
fn stream_into_gone(container: &str, command: &[&str], fed: bool) -> (nua_runtime::Error, usize) {
    let name = container.to_owned();
    let command: Vec<String> = strings(command);
    let what = format!("`{}` streaming into a failed output", command[0]);
    within(60, &what, move |engine| {
        let mut gone = Gone { taken: 0 };
        let mut endless = std::io::repeat(b'y');
        let stdin: Option<&mut (dyn std::io::Read + Send)> = match fed {
            true => Some(&mut endless),
            false => None,
        };
        let result = engine.exec_stream(&name, &Exec::new(command), stdin, &mut gone);
        (result.unwrap_err(), gone.taken)
    })
}

#[test]
fn exec_stream_ends_when_its_output_or_input_fails_while_the_command_runs_on() {
    let engine = engine();
    let image = shell_image("stream-gone");
    let container = sleeper(&engine, &image, "stream-gone");

    let (err, taken) = stream_into_gone(&container.0, &["yes"], false);
    assert!(
        matches!(&err, nua_runtime::Error::Stream { input: false, source, .. }
            if source.kind() == std::io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cannot write the output of `yes` run in the container `{}`",
            container.0
        )
    );
    assert!(taken >= 1_000_000, "{taken}");

    // The same with input still being fed: the thread reading it stops too.
    let (err, _) = stream_into_gone(&container.0, &["cat"], true);
    assert!(
        matches!(&err, nua_runtime::Error::Stream { input: false, program, .. }
            if program == "cat"),
        "{err:?}"
    );

    // An input that fails after 1 MB, into `cat` that would wait for more.
    let name = container.0.clone();
    let err = within(60, "`cat` fed a failing input", move |engine| {
        use std::io::Read;
        let mut failing = std::io::repeat(b'y').take(1_000_000).chain(Failing);
        let cat = Exec::new(["cat"]);
        let result = engine.exec_stream(&name, &cat, Some(&mut failing), &mut std::io::sink());
        result.unwrap_err()
    });
    assert!(
        matches!(&err, nua_runtime::Error::Stream { input: true, source, .. }
            if source.kind() == std::io::ErrorKind::UnexpectedEof),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read the input for `cat` run in the container `{}`",
            container.0
        )
    );
}

/// A reader that fails, as a file on a failing disk or a connection cut short.
struct Failing;

impl std::io::Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

#[test]
fn a_container_without_network_runs_its_command_with_only_loopback() {
    let engine = engine();
    let image = shell_image("no-network");
    let container = sleeper(&engine, &image, "no-network");

    let info = engine.container(&container.0).unwrap().unwrap();
    assert_eq!(info.state, nua_runtime::State::Running);
    let cmd = common::docker::inspect(&container.0, "{{json .Config.Cmd}}");
    assert_eq!(cmd.trim(), r#"["sleep","60"]"#);
    let mode = common::docker::inspect(&container.0, "{{.HostConfig.NetworkMode}}");
    assert_eq!(mode.trim(), "none");

    let mut dev = Vec::new();
    let status = engine
        .exec_stream(
            &container.0,
            &Exec::new(["cat", "/proc/net/dev"]),
            None,
            &mut dev,
        )
        .unwrap();
    assert_eq!(status.exit_code, 0);
    let dev = String::from_utf8(dev).unwrap();
    // Two header lines, then one line per interface: `  lo: 0 0 …`.
    let interfaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim())
        .collect();
    assert_eq!(interfaces, ["lo"], "{dev}");
}
