//! Nua's own nginx (Debian's), driven by `nua_deploy::proxy`: routes by host and path with the
//! prefix stripped, websockets through it, a reload under load that loses no request, and a
//! configuration nginx refuses that changes nothing of what runs. The apps are small HTTP
//! servers of this test on 127.0.0.1.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nua_deploy::instance::{Container, Desired, PlacedPort, Role};
use nua_deploy::proxy::{self, nginx::Nginx};

/// An app answering `NAME path=PATH prefix=X-Forwarded-Prefix proto=X-Forwarded-Proto`; an
/// `Upgrade` request is switched and echoed back byte for byte.
fn backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(name, stream));
        }
    });
    port
}

fn serve(name: &str, stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            let (k, v) = line.trim_end().split_once(": ").unwrap_or((&line, ""));
            headers.push((k.to_ascii_lowercase(), v.to_owned()));
        }
        let header = |k: &str| {
            headers
                .iter()
                .find(|(h, _)| h == k)
                .map_or("-", |(_, v)| v.as_str())
                .to_owned()
        };
        if header("upgrade") == "websocket" {
            let _ = writer.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            );
            let mut buf = [0u8; 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || writer.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            return;
        }
        let body = format!(
            "{name} path={path} prefix={} proto={}\n",
            header("x-forwarded-prefix"),
            header("x-forwarded-proto")
        );
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// `GET path` with `Host: host` through nginx: the status line and the body.
fn get(port: u16, host: &str, path: &str) -> std::io::Result<(String, String)> {
    common::docker::http_get_host(port, host, path)
}

fn instance(label: &str, domain: &str, port: u16) -> Desired {
    Desired {
        label: label.to_owned(),
        domain: Some(domain.to_owned()),
        app_id: "test".to_owned(),
        network: format!("nua-{label}"),
        engine: Default::default(),
        containers: vec![Container {
            name: format!("nua-{label}"),
            component: "app".to_owned(),
            role: Role::App,
            image: "test:1".to_owned(),
            env: Default::default(),
            ports: vec![PlacedPort {
                name: "web".to_owned(),
                container: 8000,
                protocol: "tcp".to_owned(),
                host: Some(port),
                proxy: None,
                plain: false,
            }],
            volumes: Vec::new(),
            docker: Default::default(),
            ready_check: None,
            single_writer: false,
            proxy: None,
            module: None,
            backup: None,
        }],
    }
}

/// Nua's own nginx on `http_port`, stopped when dropped.
struct OwnNginx(Nginx);

impl Drop for OwnNginx {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

fn own_nginx(dir: PathBuf, http_port: u16) -> OwnNginx {
    common::test_env();
    OwnNginx(Nginx::own(
        PathBuf::from("/usr/sbin/nginx"),
        dir,
        http_port,
        http_port + 1,
    ))
}

fn domains(instances: &[Desired]) -> Vec<proxy::Domain> {
    proxy::domains(instances, &|_| None).unwrap()
}

#[test]
fn apps_under_one_host_are_routed_by_path_and_a_websocket_goes_through() {
    let work = common::temp_dir();
    let port = 7180;
    let nginx = own_nginx(work.path().join("proxy"), port);
    let (a, b, root) = (backend("a"), backend("b"), backend("root"));
    let apps = [
        instance("a", "example.test/a", a),
        instance("b", "example.test/b/c", b),
        instance("root", "example.test", root),
        instance("other", "other.test", root),
    ];
    let synced = nginx.0.sync(&domains(&apps)).unwrap();
    assert!(synced.started, "{synced:?}");

    let at = |host: &str, path: &str| get(port, host, path).unwrap();
    assert_eq!(
        at("example.test", "/a/notes?x=1"),
        (
            "HTTP/1.1 200 OK".to_owned(),
            "a path=/notes?x=1 prefix=/a proto=http\n".to_owned()
        )
    );
    assert_eq!(
        at("example.test", "/b/c/").1,
        "b path=/ prefix=/b/c proto=http\n"
    );
    assert_eq!(
        at("example.test", "/b/other").1,
        "root path=/b/other prefix=- proto=http\n"
    );
    // The path without its slash is sent to the one with it.
    let (status, _) = at("example.test", "/a");
    assert!(status.starts_with("HTTP/1.1 308"), "{status}");
    assert_eq!(at("other.test", "/").1, "root path=/ prefix=- proto=http\n");
    // A host no site serves is not given another site.
    assert!(at("unknown.test", "/").0.starts_with("HTTP/1.1 404"));

    // A websocket upgrade through nginx: switched, then bytes both ways.
    let mut ws = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        ws,
        "GET /a/socket HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(ws.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    ws.write_all(b"ping through the proxy").unwrap();
    let mut echoed = [0u8; 22];
    reader.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping through the proxy");
    drop(ws);

    // nginx stopped behind Nua's back: the next sync (what `nua server` does every tick)
    // starts it again, serving the same sites.
    let pid = nginx.0.running().unwrap();
    // SAFETY: the master pid nginx wrote.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    common::deploy::wait_until(10, "nginx stopping", || nginx.0.running().is_none());
    let synced = nginx.0.sync(&domains(&apps)).unwrap();
    assert!(synced.started && synced.changed.is_empty(), "{synced:?}");
    assert_eq!(at("other.test", "/").1, "root path=/ prefix=- proto=http\n");
}

#[test]
fn a_reload_loses_no_request_and_a_refused_configuration_changes_nothing() {
    let work = common::temp_dir();
    let port = 7190;
    let mut nginx = own_nginx(work.path().join("proxy"), port);
    let (old, new) = (backend("old"), backend("new"));
    nginx
        .0
        .sync(&domains(&[instance("app", "app.test", old)]))
        .unwrap();
    assert!(get(port, "app.test", "/").unwrap().1.starts_with("old "));

    // Requests without pause while the route moves to the new app.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                match get(port, "app.test", "/") {
                    Ok((status, body)) if status == "HTTP/1.1 200 OK" => answers.push(body),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let synced = nginx
        .0
        .sync(&domains(&[instance("app", "app.test", new)]))
        .unwrap();
    assert!(synced.reloaded, "{synced:?}");
    assert_eq!(synced.changed, ["app.test.conf"]);
    common::deploy::wait_until(10, "the new app answering", || {
        get(port, "app.test", "/").is_ok_and(|(_, b)| b.starts_with("new "))
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let answers = load.join().unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {sent:?}");
    assert!(answers.len() > 20, "{}", answers.len());
    assert!(answers.first().unwrap().starts_with("old "));
    assert!(answers.last().unwrap().starts_with("new "));

    // An operator's include nginx refuses: the error is nginx's, and what runs is untouched.
    let include = work.path().join("extra.conf");
    std::fs::write(&include, "proxy_buffering sometimes;\n").unwrap();
    nginx.0.settings.include = Some(include);
    let live = std::fs::read_link(work.path().join("proxy/sites")).unwrap();
    let err = nginx
        .0
        .sync(&domains(&[instance("app", "app.test", old)]))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("nginx refuses the new configuration; the running one is kept")
            && message.contains("proxy_buffering"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_link(work.path().join("proxy/sites")).unwrap(),
        live
    );
    assert!(get(port, "app.test", "/").unwrap().1.starts_with("new "));
    // Nothing of the refused set is left behind.
    let sets = std::fs::read_dir(work.path().join("proxy"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("sites."))
        .count();
    assert_eq!(sets, 1);

    // The last site of the host removed: its file goes, and the host is served no more.
    nginx.0.settings.include = None;
    let synced = nginx.0.sync(&[]).unwrap();
    assert_eq!(synced.removed, ["app.test.conf"]);
    let (status, _) = get(port, "app.test", "/").unwrap();
    assert!(status.contains(" 404 "), "{status}");
}

/// A stand-in for the system's nginx: its own main configuration, default site and pid file,
/// including what `conf.d/` holds, as Debian's does. Stopped when dropped.
struct SystemNginx {
    conf: PathBuf,
    pid: PathBuf,
}

impl SystemNginx {
    fn start(dir: &std::path::Path, port: u16, extra_http: &str) -> SystemNginx {
        for sub in ["conf.d", "logs", "temp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "pid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{}}\nhttp {{\n\
                 access_log off;\nclient_body_temp_path {d}/temp/body;\n\
                 proxy_temp_path {d}/temp/proxy;\nfastcgi_temp_path {d}/temp/fastcgi;\n\
                 uwsgi_temp_path {d}/temp/uwsgi;\nscgi_temp_path {d}/temp/scgi;\n\
                 server {{ listen {port} default_server; return 404; }}\n{extra_http}\n\
                 include {d}/conf.d/*.conf;\n}}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        SystemNginx {
            conf,
            pid: dir.join("nginx.pid"),
        }
    }
}

impl Drop for SystemNginx {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: the master pid this test's nginx wrote.
                unsafe { libc::kill(pid, libc::SIGQUIT) };
            }
        }
    }
}

#[test]
fn the_systems_nginx_serves_the_sites_and_a_set_it_refuses_is_put_back() {
    common::test_env();
    let work = common::temp_dir();
    let port = 7197;
    let (old, new) = (backend("old"), backend("new"));
    let system = SystemNginx::start(&work.path().join("system"), port, "");
    let mut nginx = Nginx::own(
        PathBuf::from("/usr/sbin/nginx"),
        work.path().join("proxy"),
        port,
        port + 1,
    );
    nginx.system = Some(proxy::nginx::System {
        conf: system.conf.clone(),
        pid_file: system.pid.clone(),
    });
    std::fs::write(
        work.path().join("system/conf.d/nua.conf"),
        nginx.include_line(),
    )
    .unwrap();
    let synced = nginx
        .sync(&domains(&[instance("app", "app.test", old)]))
        .unwrap();
    assert!(synced.reloaded && !synced.started, "{synced:?}");
    assert!(get(port, "app.test", "/").unwrap().1.starts_with("old "));
    // The system's own default site still answers what Nua does not serve.
    assert!(get(port, "other.test", "/").unwrap().0.contains(" 404 "));

    // A file of the operator's that nginx refuses: Nua's sets pass on their own, but the
    // whole configuration does not, so the next set is not made live (nor nginx reloaded),
    // the one before is put back, and nginx's message names the operator's file.
    std::fs::write(
        work.path().join("system/conf.d/operator.conf"),
        "proxy_buffering sometimes;\n",
    )
    .unwrap();
    let live = std::fs::read_link(work.path().join("proxy/sites")).unwrap();
    let err = nginx
        .sync(&domains(&[instance("app", "app.test", new)]))
        .unwrap_err();
    assert!(err.to_string().contains("operator.conf"), "{err}");
    assert_eq!(
        std::fs::read_link(work.path().join("proxy/sites")).unwrap(),
        live
    );
    assert!(get(port, "app.test", "/").unwrap().1.starts_with("old "));
    // Stopping is never Nua's to do with the system's nginx.
    nginx.stop().unwrap();
    assert!(get(port, "app.test", "/").unwrap().1.starts_with("old "));
}

/// A TCP server that sends back what it gets.
fn echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    port
}

#[test]
fn a_non_web_port_with_a_proxy_port_is_forwarded_over_tcp() {
    let work = common::temp_dir();
    let port = 7170;
    let nginx = own_nginx(work.path().join("proxy"), port);
    let mut app = instance("mail", "mail.test", backend("mail"));
    app.containers[0].ports.push(PlacedPort {
        name: "smtp".to_owned(),
        container: 25,
        protocol: "tcp".to_owned(),
        host: Some(echo()),
        proxy: Some(7175),
        plain: true,
    });
    nginx.0.sync(&domains(&[app])).unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", 7175)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"EHLO nua\r\n").unwrap();
    let mut back = [0u8; 10];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"EHLO nua\r\n");
    // The web port is served as before.
    assert!(get(port, "mail.test", "/").unwrap().1.starts_with("mail "));
}
