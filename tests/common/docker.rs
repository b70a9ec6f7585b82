//! Running built images on the real Docker Engine: load, run with a port published on
//! 127.0.0.1, wait for HTTP and for the healthcheck.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{run_ok, Container, LoadedImage};

/// A GET over a plain TCP connection: status line and body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    http_get_host(port, "127.0.0.1", path)
}

/// [`http_get`] asking for `host` (`Host:`), as a proxy in front of several sites sees it.
pub fn http_get_host(port: u16, host: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// [`http_get`] until something answers (30 s at most).
pub fn wait_for_http(port: u16, path: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http_get(port, path) {
            Ok(answer) if !answer.0.is_empty() => return answer,
            other if Instant::now() > deadline => panic!("no HTTP answer on {port}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `docker load` a tarball that must name `tag`; the image is removed when dropped.
pub fn load(tarball: &Path, tag: &str) -> LoadedImage {
    let loaded = run_ok(Command::new("docker").arg("load").arg("-i").arg(tarball));
    assert!(
        loaded.contains(tag),
        "docker load did not name {tag}: {loaded}"
    );
    LoadedImage(tag.to_owned())
}

/// A container of `image` with container port `port` published on 127.0.0.1, and the
/// host port Docker picked.
pub fn run_published(image: &str, name: &str, port: u16) -> (Container, u16) {
    let publish = format!("127.0.0.1::{port}");
    run_ok(Command::new("docker").args(["run", "-d", "--name", name, "-p", &publish, image]));
    let container = Container(name.to_owned());
    let line = run_ok(Command::new("docker").args(["port", name, &format!("{port}/tcp")]));
    let host_port = line
        .lines()
        .find_map(|l| l.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 127.0.0.1 port in {line:?}"));
    (container, host_port)
}

/// Wait until Docker says the container is healthy (60 s at most); panic if it says
/// unhealthy, with the last check's output.
pub fn wait_healthy(container: &Container) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = inspect(&container.0, "{{.State.Health.Status}}");
        match health.trim() {
            "healthy" => return,
            "unhealthy" => panic!(
                "the container became unhealthy: {}",
                inspect(&container.0, "{{json .State.Health.Log}}")
            ),
            other if Instant::now() > deadline => panic!("still {other} after 60 s"),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// `docker inspect -f FORMAT OBJECT`.
pub fn inspect(object: &str, format: &str) -> String {
    run_ok(Command::new("docker").args(["inspect", "-f", format, object]))
}

/// `docker exec CONTAINER sh -c SCRIPT`, its stdout.
pub fn exec(container: &Container, script: &str) -> String {
    run_ok(Command::new("docker").args(["exec", &container.0, "sh", "-c", script]))
}

/// A running app: its container (removed first when dropped), its image, the host port
/// and the SBOM read from the image.
pub struct Running {
    pub container: Container,
    pub image: LoadedImage,
    pub port: u16,
    pub sbom: serde_json::Value,
}

/// `pyspdxtools`, the SPDX project's validator, in a virtual environment of the tests'
/// cache (made from PyPI when missing).
pub fn spdx_validator() -> std::path::PathBuf {
    use std::sync::Mutex;
    static MADE: Mutex<()> = Mutex::new(());
    let _guard = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let venv = super::shared_cache()
        .parent()
        .expect("the shared cache has a parent")
        .join("spdx-tools-0.8.5");
    let tool = venv.join("bin/pyspdxtools");
    if !tool.is_file() {
        let _ = std::fs::remove_dir_all(&venv);
        run_ok(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        run_ok(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "spdx-tools==0.8.5",
        ]));
    }
    tool
}

/// Restart the dockerd `scripts/test-env.sh` started; every container stops.
#[track_caller]
pub fn restart_dockerd() {
    let restarted = Command::new("bash")
        .arg(super::root().join("scripts/test-env.sh"))
        .arg("restart-dockerd")
        .output()
        .unwrap();
    assert!(
        restarted.status.success(),
        "cannot restart the test dockerd (run the suite with scripts/test.sh):\n{}",
        String::from_utf8_lossy(&restarted.stderr)
    );
}
