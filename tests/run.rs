//! `nua run`, `ps`, `logs` and `stop` on the real Docker Engine: an app folder built then run
//! in the foreground until Ctrl-C or detached, env overrides, ports published on 127.0.0.1
//! (another one when the config's is taken), managed volumes that outlive the container and
//! tmpfs mounts, apps that exit at once or turn unhealthy, tarballs refused before anything is
//! loaded, and an image Docker already has.
//!
//! Every test has its own cache, container name and image name (`app_copy` gives the app a
//! unique id), and removes what it made when dropped; tests that publish on a fixture's host
//! port hold that port's lock while their container lives.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::docker::{http_get, wait_for_http};
use common::run::*;
use common::*;
use serde_json::Value;

/// Long enough for a cold build of flask-hello from PyPI plus its health check.
const BUILD_AND_RUN: Duration = Duration::from_secs(600);

/// `nua run TARGET --name NAME EXTRA` with cache `cache`.
fn nua_run(target: &Path, name: &str, cache: &Path, extra: &[&str]) -> Command {
    let mut cmd = nua();
    cmd.arg("run")
        .arg(target)
        .arg("--name")
        .arg(name)
        .args(extra)
        .env("NUA_CACHE_DIR", cache);
    cmd
}

/// `nua run … --detach --json` that must succeed: its JSON and its stderr.
#[track_caller]
fn run_detached(target: &Path, name: &str, cache: &Path, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["--detach", "--json"];
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = run_for(&mut nua_run(target, name, cache, &args), BUILD_AND_RUN);
    assert!(
        status.success(),
        "nua run {} failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        target.display()
    );
    (json_stdout(stdout.as_bytes()), stderr)
}

/// Build `app` once into `cache` (outside any port lock), so that `nua run` finds every step
/// cached.
fn warm(app: &Path, cache: &Path, work: &Path) {
    build(app, cache, &work.join("warm.tar"), &[]);
}

#[test]
fn foreground_run_serves_until_ctrl_c_then_removes_the_container() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let name = unique_name("foreground");
    let app = app_copy("flask-hello", work.path(), &name);
    warm(&app, &cache, work.path());
    let _image = LoadedImage(image_tag(&name));
    let _port = port_lock(8000);
    let _container = Container(name.clone());

    let mut run = Foreground::spawn(&mut nua_run(&app, &name, &cache, &[]));
    run.wait_for_line(&format!("{name} is healthy"), BUILD_AND_RUN);
    let port = url_port(&run.stderr, 8000);
    let all = run.stderr.join("\n");
    assert!(all.contains(&format!("started {name}")), "{all}");
    // The container's own stderr (gunicorn's log) comes through.
    assert!(all.contains("Listening at"), "{all}");
    let (status, body) = wait_for_http(port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert_eq!(body, "Hello from Flask!\n");
    assert_eq!(
        inspect_label(&name, "nua.app"),
        name,
        "the container is not labelled nua.app={name}"
    );

    run.signal(libc::SIGINT);
    let (status, _stdout, stderr) = run.wait(Duration::from_secs(120));
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        !container_exists(&name),
        "the container is left after Ctrl-C"
    );
}

/// `docker inspect` label `key` of container `name`.
fn inspect_label(name: &str, key: &str) -> String {
    common::docker::inspect(name, &format!("{{{{index .Config.Labels \"{key}\"}}}}"))
        .trim()
        .to_owned()
}

#[test]
fn detached_run_with_env_then_ps_logs_and_stop() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let name = unique_name("detached");
    let app = app_copy("flask-hello", work.path(), &name);
    warm(&app, &cache, work.path());
    let tag = image_tag(&name);
    let _image = LoadedImage(tag.clone());
    let _port = port_lock(8000);
    let _container = Container(name.clone());

    let (json, stderr) = run_detached(&app, &name, &cache, &["--env", "GREETING=Bonjour"]);
    assert_eq!(json["app"], name.as_str(), "{json}");
    assert_eq!(json["health"], "healthy", "{json}");
    assert_eq!(json["image"], tag.as_str(), "{json}");
    let id = common::docker::inspect(&tag, "{{.Id}}");
    assert_eq!(json["image_id"], id.trim(), "{json}");
    let container = common::docker::inspect(&name, "{{.Id}}");
    assert_eq!(json["container"], container.trim(), "{json}");
    let ports = json["ports"].as_array().expect("ports is an array");
    assert_eq!(ports.len(), 1, "{json}");
    assert_eq!(ports[0]["name"], "web", "{json}");
    assert_eq!(ports[0]["container"], 8000, "{json}");
    assert_eq!(ports[0]["protocol"], "tcp", "{json}");
    assert_eq!(ports[0]["host_ip"], "127.0.0.1", "{json}");
    let port = host_port(&json["ports"], 8000);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(json["load"].is_object(), "a built image is loaded: {json}");

    let (status, body) = wait_for_http(port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert_eq!(body, "Bonjour!\n");
    assert_eq!(inspect_label(&name, "nua.app"), name);

    let ps = run_ok(nua().args(["ps", "--json"]));
    let ps = json_stdout(ps.as_bytes());
    let entry = ps
        .as_array()
        .expect("ps --json is an array")
        .iter()
        .find(|c| c["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} is not in {ps}"));
    assert_eq!(entry["state"], "running", "{entry}");
    assert_eq!(entry["health"], "healthy", "{entry}");
    assert_eq!(entry["image"], tag.as_str(), "{entry}");
    assert_eq!(host_port(&entry["ports"], 8000), port, "{entry}");

    let logs = run(nua().arg("logs").arg(&name));
    assert!(logs.status.success(), "{logs:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(text.contains("Listening at"), "nua logs {name}:\n{text}");

    run_ok(nua().arg("stop").arg(&name));
    assert!(!container_exists(&name), "nua stop left the container");
    assert!(
        http_get(port, "/").is_err(),
        "something still answers on {port}"
    );

    let again = run(nua().arg("stop").arg(&name));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&name),
        "the error does not name {name}: {stderr}"
    );
}

#[test]
fn a_taken_host_port_is_replaced_by_a_free_one() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let name = unique_name("port-taken");
    let app = app_copy("notes", work.path(), &name);
    warm(&app, &cache, work.path());
    let _image = LoadedImage(image_tag(&name));
    let _volume = Volume(format!("{name}_data"));
    let _port = port_lock(8080);
    // Taken by this test or by something else: taken either way.
    let _holder = std::net::TcpListener::bind(("127.0.0.1", 8080)).ok();
    let _container = Container(name.clone());

    let (json, stderr) = run_detached(&app, &name, &cache, &[]);
    let port = host_port(&json["ports"], 8080);
    assert_ne!(port, 8080, "{json}");
    assert!(
        stderr.contains(&format!(
            "port 8080 is taken: web is published on 127.0.0.1:{port} instead"
        )),
        "{stderr}"
    );
    let (status, body) = wait_for_http(port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    run_ok(nua().arg("stop").arg(&name).arg("--volumes"));
}

#[test]
fn a_managed_volume_outlives_the_container_and_tmpfs_has_its_size() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let name = unique_name("volume");
    let app = app_copy("notes", work.path(), &name);
    warm(&app, &cache, work.path());
    let volume = format!("{name}_data");
    let _image = LoadedImage(image_tag(&name));
    let _volume = Volume(volume.clone());
    let _port = port_lock(8080);
    let _container = Container(name.clone());

    let (json, _) = run_detached(&app, &name, &cache, &[]);
    let port = host_port(&json["ports"], 8080);
    run_ok(Command::new("docker").args([
        "exec",
        "-u",
        "0",
        &name,
        "sh",
        "-c",
        "echo kept > /data/note.txt",
    ]));
    assert_eq!(wait_for_http(port, "/note.txt").1, "kept\n");
    let label = run_ok(Command::new("docker").args([
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"nua.app\"}}",
        &volume,
    ]));
    assert_eq!(
        label.trim(),
        name,
        "the volume is not labelled nua.app={name}"
    );

    run_ok(nua().arg("stop").arg(&name));
    assert!(!container_exists(&name), "nua stop left the container");
    assert!(volume_exists(&volume), "nua stop removed {volume}");

    let (json, _) = run_detached(&app, &name, &cache, &[]);
    let port = host_port(&json["ports"], 8080);
    assert_eq!(wait_for_http(port, "/note.txt").1, "kept\n");
    let mounts = run_ok(Command::new("docker").args(["exec", &name, "cat", "/proc/mounts"]));
    let scratch = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/scratch"))
        .unwrap_or_else(|| panic!("/scratch is not mounted:\n{mounts}"));
    let fields: Vec<&str> = scratch.split_whitespace().collect();
    assert_eq!(fields[2], "tmpfs", "{scratch}");
    assert!(
        fields[3].split(',').any(|o| o == "size=16384k"),
        "/scratch is not 16m: {scratch}"
    );

    run_ok(nua().arg("stop").arg(&name).arg("--volumes"));
    assert!(!container_exists(&name), "nua stop left the container");
    assert!(!volume_exists(&volume), "nua stop --volumes left {volume}");
}

#[test]
fn a_detached_app_that_exits_at_once_fails_with_its_last_lines() {
    let work = temp_dir();
    let cache = cache_with_base("debian-bookworm", work.path());
    let name = unique_name("exits-detached");
    let app = app_copy("exits-at-once", work.path(), &name);
    let _image = LoadedImage(image_tag(&name));
    let _container = Container(name.clone());

    let (status, stdout, stderr) = run_for(
        &mut nua_run(&app, &name, &cache, &["--detach"]),
        BUILD_AND_RUN,
    );
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name} exited with code 3")),
        "{stderr}"
    );
    assert!(
        stderr.contains("exits-at-once says hello on stdout"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exits-at-once gives up on stderr"),
        "{stderr}"
    );
    assert!(!container_exists(&name), "the exited container is left");
}

#[test]
fn a_foreground_app_that_exits_passes_on_its_output_and_exit_code() {
    let work = temp_dir();
    let cache = cache_with_base("debian-bookworm", work.path());
    let name = unique_name("exits-foreground");
    let app = app_copy("exits-at-once", work.path(), &name);
    let _image = LoadedImage(image_tag(&name));
    let _container = Container(name.clone());

    let (status, stdout, stderr) = run_for(&mut nua_run(&app, &name, &cache, &[]), BUILD_AND_RUN);
    assert_eq!(
        status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("exits-at-once says hello on stdout"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("exits-at-once gives up on stderr"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("exits-at-once gives up on stderr"),
        "the container's stderr went to stdout:\n{stdout}"
    );
    assert!(
        stderr.contains(&format!("{name} exited with code 3")),
        "{stderr}"
    );
    assert!(!container_exists(&name), "the exited container is left");
}

#[test]
fn a_detached_app_that_turns_unhealthy_fails_with_the_check_output() {
    let work = temp_dir();
    let cache = cache_with_base("debian-bookworm", work.path());
    let name = unique_name("unhealthy-detached");
    let app = app_copy("unhealthy", work.path(), &name);
    let _image = LoadedImage(image_tag(&name));
    let _container = Container(name.clone());

    let (status, stdout, stderr) = run_for(
        &mut nua_run(&app, &name, &cache, &["--detach"]),
        BUILD_AND_RUN,
    );
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains(&format!("{name} is unhealthy")), "{stderr}");
    assert!(
        stderr.contains("unhealthy-fixture: the check always fails"),
        "{stderr}"
    );
}

#[test]
fn a_foreground_app_that_turns_unhealthy_is_stopped_and_removed() {
    let work = temp_dir();
    let cache = cache_with_base("debian-bookworm", work.path());
    let name = unique_name("unhealthy-foreground");
    let app = app_copy("unhealthy", work.path(), &name);
    let _image = LoadedImage(image_tag(&name));
    let _container = Container(name.clone());

    let (status, stdout, stderr) = run_for(&mut nua_run(&app, &name, &cache, &[]), BUILD_AND_RUN);
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains(&format!("{name} is unhealthy")), "{stderr}");
    assert!(
        stderr.contains("unhealthy-fixture: the check always fails"),
        "{stderr}"
    );
    assert!(!container_exists(&name), "the unhealthy container is left");
}

/// Static-site built with tag `tag` into `work/image.tar`: the tarball and the build result.
fn build_static_site(work: &Path, tag: &str) -> (std::path::PathBuf, Value) {
    let tarball = work.join("image.tar");
    let result = build(
        &fixture_app("static-site"),
        &cache_with_base("python", work),
        &tarball,
        &["-t", tag],
    );
    (tarball, result)
}

#[test]
fn run_refuses_a_bad_tarball_before_loading_anything() {
    let work = temp_dir();
    let name = unique_name("bad-tarball");
    let tag = format!("{name}:1");
    let (tarball, _) = build_static_site(work.path(), &tag);
    let _image = LoadedImage(tag.clone());
    let _container = Container(name.clone());
    run(Command::new("docker").args(["rmi", "-f", &tag]));

    // Not an image at all.
    let noise_tar = work.path().join("noise.tar");
    std::fs::write(&noise_tar, noise(7, 64 * 1024)).unwrap();
    // The first half of a real one.
    let bytes = std::fs::read(&tarball).unwrap();
    let truncated = work.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // One byte of the last layer flipped.
    let (tampered, digest) = tamper_last_layer(&tarball, work.path());

    let cache = work.path().join("cache");
    for (file, must_name) in [
        (&noise_tar, vec!["noise.tar"]),
        (&truncated, vec!["truncated.tar"]),
        (&tampered, vec!["tampered.tar", digest.as_str()]),
    ] {
        let (status, stdout, stderr) = run_for(
            &mut nua_run(file, &name, &cache, &["--detach"]),
            BUILD_AND_RUN,
        );
        assert_eq!(
            status.code(),
            Some(1),
            "{}: stdout:\n{stdout}\nstderr:\n{stderr}",
            file.display()
        );
        assert!(stderr.contains("error: "), "{stderr}");
        for word in must_name {
            assert!(
                stderr.contains(word),
                "the error does not name {word}: {stderr}"
            );
        }
        assert!(
            !image_exists(&tag),
            "{tag} was loaded from {}",
            file.display()
        );
        assert!(
            !container_exists(&name),
            "a container was made from {}",
            file.display()
        );
    }
}

#[test]
fn without_a_daemon_ps_says_how_to_start_one() {
    let work = temp_dir();
    let out = run(nua().arg("ps").env(
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
fn run_starts_an_image_docker_already_has() {
    let work = temp_dir();
    let name = unique_name("image-ref");
    let tag = format!("{name}:1");
    let (tarball, built) = build_static_site(work.path(), &tag);
    run_ok(nua().arg("load").arg(&tarball));
    let _image = LoadedImage(tag.clone());
    let _port = port_lock(8080);
    let _container = Container(name.clone());

    let (json, _) = run_detached(Path::new(&tag), &name, &work.path().join("cache"), &[]);
    assert!(json["load"].is_null(), "nothing is loaded: {json}");
    assert_eq!(json["image_id"], built["config_digest"], "{json}");
    assert_eq!(json["health"], "healthy", "{json}");
    let port = host_port(&json["ports"], 8080);
    let (status, body) = wait_for_http(port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert!(body.contains("Hello from a Nua static site"), "{body}");
    run_ok(nua().arg("stop").arg(&name));
    assert!(!container_exists(&name), "nua stop left the container");
}
