use std::path::PathBuf;

use nua_config::{deploy, Format};

use super::*;
use crate::instance::{Container, PlacedPort};

fn desired(label: &str, domain: Option<&str>, ports: &[(&str, u16)]) -> Desired {
    Desired {
        label: label.to_owned(),
        domain: domain.map(str::to_owned),
        app_id: "app".to_owned(),
        network: format!("nua-{label}"),
        engine: Default::default(),
        containers: vec![Container {
            name: format!("nua-{label}"),
            component: "app".to_owned(),
            role: Role::App,
            image: "app:1".to_owned(),
            env: Default::default(),
            ports: ports
                .iter()
                .map(|(name, host)| PlacedPort {
                    name: (*name).to_owned(),
                    container: 8000,
                    protocol: "tcp".to_owned(),
                    host: Some(*host),
                    proxy: None,
                    plain: false,
                })
                .collect(),
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

fn settings() -> Settings {
    Settings {
        http_port: 8080,
        https_port: 8443,
        challenges: PathBuf::from("/var/lib/nua-proxy/acme"),
        include: None,
        resolver: None,
    }
}

#[test]
fn apps_under_paths_of_one_host_share_its_file_longest_path_first() {
    let a = desired("a", Some("example.com/a"), &[("web", 8101)]);
    let b = desired(
        "b",
        Some("example.com/a/b"),
        &[("admin", 8201), ("web", 8102)],
    );
    let root = desired("root", Some("Example.com"), &[("http", 8103)]);
    let none = desired("none", None, &[("web", 8104)]);
    let domains = domains([&a, &b, &root, &none], &|_| None).unwrap();
    assert_eq!(domains.len(), 1);
    let routes: Vec<(&str, &str, u16)> = domains[0]
        .routes
        .iter()
        .map(|r| (r.path.as_str(), r.location.as_str(), r.port))
        .collect();
    assert_eq!(
        routes,
        [
            ("/a/b", "/a/b/", 8102),
            ("/a", "/a/", 8101),
            ("/", "/", 8103)
        ]
    );
    let text = render_site(&domains[0], &settings()).unwrap();
    assert!(text.contains("server_name example.com;"), "{text}");
    assert!(text.contains("listen 8080;"), "{text}");
    // Under a path, the prefix is stripped (a URI on proxy_pass) and said in a header.
    assert!(
        text.contains("location /a/ {\n        proxy_pass http://127.0.0.1:8101/;"),
        "{text}"
    );
    assert!(
        text.contains("proxy_set_header X-Forwarded-Prefix /a;"),
        "{text}"
    );
    assert!(
        text.contains("location = /a {\n        return 308 /a/$is_args$args;"),
        "{text}"
    );
    // At the root, the URI goes as it came.
    assert!(
        text.contains("location / {\n        proxy_pass http://127.0.0.1:8103;"),
        "{text}"
    );
    assert!(
        text.contains("proxy_set_header Upgrade $http_upgrade;"),
        "{text}"
    );
    assert!(text.contains("client_max_body_size 64m;"), "{text}");
    assert!(!text.contains("ssl"), "{text}");
}

#[test]
fn with_a_certificate_http_redirects_and_https_serves_with_hsts() {
    let a = desired("a", Some("example.com"), &[("web", 8101)]);
    let tls = |host: &str| {
        Some(Tls {
            certificate: PathBuf::from(format!("/certs/{host}/fullchain.pem")),
            key: PathBuf::from(format!("/certs/{host}/key.pem")),
            version: "1".to_owned(),
        })
    };
    let domains = domains([&a], &tls).unwrap();
    let text = render_site(&domains[0], &settings()).unwrap();
    let (http, https) = text.split_once("listen 8443 ssl").unwrap();
    assert!(
        http.contains("return 308 https://$host:8443$request_uri;"),
        "{text}"
    );
    assert!(
        http.contains("location ^~ /.well-known/acme-challenge/"),
        "{text}"
    );
    assert!(!http.contains("proxy_pass"), "{text}");
    assert!(
        https.contains("ssl_certificate /certs/example.com/fullchain.pem;"),
        "{text}"
    );
    assert!(https.contains("Strict-Transport-Security"), "{text}");
    assert!(
        https.contains("proxy_pass http://127.0.0.1:8101;"),
        "{text}"
    );
    // On 443, the redirect names no port.
    let standard = Settings {
        https_port: 443,
        ..settings()
    };
    let text = render_site(&domains[0], &standard).unwrap();
    assert!(
        text.contains("return 308 https://$host$request_uri;"),
        "{text}"
    );
}

#[test]
fn a_path_served_twice_and_an_app_without_a_web_port_are_errors() {
    let a = desired("a", Some("example.com/x"), &[("web", 8101)]);
    let b = desired("b", Some("example.com/x/"), &[("web", 8102)]);
    let err = domains([&a, &b], &|_| None).unwrap_err();
    assert_eq!(err.to_string(), "`b` and `a` both serve `example.com/x/`");
    let c = desired("c", Some("c.example.com"), &[("one", 1), ("two", 2)]);
    let err = domains([&c], &|_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`c` has the domain `c.example.com` but no web port: name one of its ports `web`"
    );
}

#[test]
fn text_that_could_change_the_configuration_is_refused() {
    // The deploy file's loader refuses such domains; the renderer refuses them again.
    let site = deploy::load_deploy_str(
        "[[site]]\nimage = \"x\"\ndomain = \"a.com/x{return 200;}\"\n",
        Format::Toml,
        std::path::Path::new("deploy.toml"),
    );
    assert!(site.is_err());
    let evil = Domain {
        host: "a.com;include /etc/passwd".to_owned(),
        routes: Vec::new(),
        streams: Vec::new(),
        tls: None,
    };
    let err = render_site(&evil, &settings()).unwrap_err();
    assert!(
        format!("{:#}", anyhow_like(&err)).contains("cannot go into an nginx configuration"),
        "{err}"
    );
}

/// The error and its causes, as one line.
fn anyhow_like(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `desired` with a second port `name` the proxy listens on at `listen`.
fn with_stream(mut desired: Desired, name: &str, host: u16, listen: u16, plain: bool) -> Desired {
    desired.containers[0].ports.push(PlacedPort {
        name: name.to_owned(),
        container: 9000,
        protocol: "tcp".to_owned(),
        host: Some(host),
        proxy: Some(listen),
        plain,
    });
    desired
}

#[test]
fn a_port_with_a_proxy_port_is_a_stream_with_tls_unless_it_says_plain() {
    let a = with_stream(
        with_stream(
            desired("a", Some("a.example.com"), &[("web", 8101)]),
            "imap",
            8102,
            993,
            false,
        ),
        "smtp",
        8103,
        25,
        true,
    );
    let tls = |_: &str| {
        Some(Tls {
            certificate: PathBuf::from("/certs/fullchain.pem"),
            key: PathBuf::from("/certs/key.pem"),
            version: "1".to_owned(),
        })
    };
    let domains = domains([&a], &tls).unwrap();
    let names: Vec<(&str, u16, u16)> = domains[0]
        .streams
        .iter()
        .map(|s| (s.name.as_str(), s.listen, s.port))
        .collect();
    assert_eq!(names, [("imap", 993, 8102), ("smtp", 25, 8103)]);
    let imap = render_stream(&domains[0], &domains[0].streams[0])
        .unwrap()
        .unwrap();
    assert!(imap.contains("listen 993 ssl;"), "{imap}");
    assert!(imap.contains("proxy_pass 127.0.0.1:8102;"), "{imap}");
    assert!(
        imap.contains("ssl_certificate /certs/fullchain.pem;"),
        "{imap}"
    );
    let smtp = render_stream(&domains[0], &domains[0].streams[1])
        .unwrap()
        .unwrap();
    assert!(
        smtp.contains("listen 25;") && !smtp.contains("ssl"),
        "{smtp}"
    );
    // Without its certificate yet, a TLS stream waits; a plain one does not.
    let bare = domains_without_tls(&a);
    assert_eq!(render_stream(&bare[0], &bare[0].streams[0]).unwrap(), None);
    assert!(render_stream(&bare[0], &bare[0].streams[1])
        .unwrap()
        .is_some());
}

fn domains_without_tls(desired: &Desired) -> Vec<Domain> {
    domains([desired], &|_| None).unwrap()
}

#[test]
fn two_streams_on_one_port_or_on_the_proxys_own_are_errors() {
    let a = with_stream(
        desired("a", Some("a.example.com"), &[("web", 8101)]),
        "x",
        8102,
        7000,
        true,
    );
    let b = with_stream(
        desired("b", Some("b.example.com"), &[("web", 8103)]),
        "y",
        8104,
        7000,
        true,
    );
    let both = domains([&a, &b], &|_| None).unwrap();
    let err = check_streams(&both, &settings()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port `y` of `b` asks the proxy to listen on 7000, which port `x` of `a` has too"
    );
    let c = with_stream(
        desired("c", Some("c.example.com"), &[("web", 8105)]),
        "z",
        8106,
        8080,
        true,
    );
    let err = check_streams(&domains([&c], &|_| None).unwrap(), &settings()).unwrap_err();
    assert!(
        err.to_string().ends_with("which is the proxy's HTTP port"),
        "{err}"
    );
}

#[test]
fn the_apps_proxy_options_set_its_body_size_and_timeouts() {
    let mut a = desired("a", Some("a.example.com"), &[("web", 8101)]);
    a.containers[0].proxy = Some(nua_config::ProxyOptions {
        max_body_mb: Some(512),
        read_timeout: Some(3600),
        connect_timeout: None,
    });
    let text = render_site(&domains([&a], &|_| None).unwrap()[0], &settings()).unwrap();
    assert!(text.contains("client_max_body_size 512m;"), "{text}");
    assert!(text.contains("proxy_read_timeout 3600s;"), "{text}");
    assert!(text.contains("proxy_connect_timeout 10s;"), "{text}");
}

#[test]
fn an_app_on_swarm_is_reached_by_its_service_name_looked_up_again_and_again() {
    let mut a = desired("a", Some("example.com/a"), &[("web", 8101)]);
    let mut root = desired("root", Some("example.com"), &[("web", 8102)]);
    for d in [&mut a, &mut root] {
        d.engine = crate::instance::EngineKind::Swarm;
        d.containers[0].ports[0].container = 8000;
        d.containers[0].ports[0].host = None;
    }
    let served = domains([&a, &root], &|_| None).unwrap();
    let routes: Vec<(Option<&str>, u16)> = served[0]
        .routes
        .iter()
        .map(|r| (r.upstream.as_deref(), r.port))
        .collect();
    assert_eq!(routes, [(Some("nua-a"), 8000), (Some("nua-root"), 8000)]);
    let text = render_site(&served[0], &settings()).unwrap();
    // Under a path, the prefix is stripped by a rewrite (a URI cannot go with a variable).
    assert!(
        text.contains(
            "set $nua_upstream nua-a;\n        rewrite ^/a/(.*)$ /$1 break;\n        \
             proxy_pass http://$nua_upstream:8000;"
        ),
        "{text}"
    );
    assert!(
        text.contains("set $nua_upstream nua-root;\n        proxy_pass http://$nua_upstream:8000;"),
        "{text}"
    );
    // No task answers: 503 with `Retry-After`, never a bare 502.
    assert!(
        text.contains("error_page 502 504 = @nua_unavailable;"),
        "{text}"
    );
    assert!(text.contains("location @nua_unavailable {"), "{text}");
    // A task gone while its address is still given is given up on within seconds, not ten;
    // an app's own setting still wins.
    assert!(text.contains("proxy_connect_timeout 2s;"), "{text}");
    assert!(!text.contains("proxy_connect_timeout 10s;"), "{text}");
    a.containers[0].proxy = Some(nua_config::ProxyOptions {
        connect_timeout: Some(7),
        ..Default::default()
    });
    let text = render_site(&domains([&a], &|_| None).unwrap()[0], &settings()).unwrap();
    assert!(text.contains("proxy_connect_timeout 7s;"), "{text}");
    let settings = Settings {
        resolver: Some("127.0.0.11".to_owned()),
        ..settings()
    };
    let main = render_main(
        std::path::Path::new("/p"),
        std::path::Path::new("/p/sites"),
        &settings,
        None,
    )
    .unwrap();
    assert!(
        main.contains("resolver 127.0.0.11 valid=1s ipv6=off;"),
        "{main}"
    );
    // On one engine, none of it.
    let plain = desired("b", Some("b.example.com"), &[("web", 8103)]);
    let text = render_site(&domains([&plain], &|_| None).unwrap()[0], &settings).unwrap();
    assert!(
        !text.contains("nua_upstream") && !text.contains("@nua_unavailable"),
        "{text}"
    );
    assert!(text.contains("proxy_connect_timeout 10s;"), "{text}");
}
