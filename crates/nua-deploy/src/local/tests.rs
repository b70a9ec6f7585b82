//! Tests of [`plan`] on nua-configs written inline, with host ports that are free or busy
//! as each test says.

use std::collections::BTreeMap;
use std::path::Path;

use rstest::rstest;

use super::*;
use crate::testing::{config, Ports, APP, FIRST_FREE, IMAGE};

/// A request for the image `IMAGE` exposing `exposed`, with the nua-config `extra` (after
/// `[metadata]`; `None`: the image has no nua-config) and the `--env` overrides `env`.
fn request(extra: Option<&str>, exposed: &[&str], env: &[(&str, &str)]) -> Request {
    Request {
        name: APP.into(),
        image: IMAGE.into(),
        details: ImageDetails {
            exposed_ports: exposed.iter().map(|p| p.to_string()).collect(),
            ..ImageDetails::default()
        },
        config: extra.map(config),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        host_mounts: true,
        kept: BTreeMap::new(),
    }
}

/// The environment the container sees. Each key must come once: Docker passes duplicates
/// on, and programs differ on which one they take.
fn effective(env: &[String]) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    for kv in env {
        let (k, v) = kv.split_once('=').expect("KEY=VALUE");
        let before = seen.insert(k.to_owned(), v.to_owned());
        assert!(before.is_none(), "`{k}` is set twice: {env:?}");
    }
    seen
}

#[test]
fn an_image_may_not_mount_host_folders_unless_allowed() {
    let extra = "[[volume]]\ntype = \"bind\"\nname = \"/\"\ntarget = \"/host\"\n";
    let mut from_image = request(Some(extra), &[], &[]);
    from_image.host_mounts = false;
    let err = plan(&from_image, &Ports::free(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::HostMount { path, target } if path == Path::new("/") && target == "/host"),
        "{err:?}"
    );
    assert!(err.to_string().contains("--allow-host-mounts"), "{err}");
    from_image.host_mounts = true;
    let allowed = plan(&from_image, &Ports::free(), &[]).unwrap();
    assert_eq!(allowed.spec.mounts.len(), 1);
}

fn moved(wanted: u16, name: &str, other: u16) -> String {
    format!("port {wanted} is taken: {name} is published on 127.0.0.1:{other} instead")
}

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

#[rstest]
#[case::container_port("[port.web]\ncontainer = 8000\n", &[], &[], &[], &[], &[("web", 8000, TCP, 8000)], vec![])]
#[case::host_port(
    "[port.web]\ncontainer = 8000\nhost = 9000\n",
    &[], &[], &[], &[],
    &[("web", 8000, TCP, 9000)],
    vec![]
)]
#[case::host_auto_is_the_container_port(
    "[port.web]\ncontainer = 8000\nhost = \"auto\"\n",
    &[], &[], &[], &[],
    &[("web", 8000, TCP, 8000)],
    vec![]
)]
#[case::busy_port_moved(
    "[port.web]\ncontainer = 8000\n",
    &[], &[], &[8000], &[],
    &[("web", 8000, TCP, FIRST_FREE)],
    vec![moved(8000, "web", FIRST_FREE)]
)]
#[case::busy_host_port_moved(
    "[port.web]\ncontainer = 8000\nhost = 9000\n",
    &[], &[], &[9000], &[],
    &[("web", 8000, TCP, FIRST_FREE)],
    vec![moved(9000, "web", FIRST_FREE)]
)]
#[case::taken_port_moved(
    "[port.web]\ncontainer = 8000\n",
    &[], &[], &[], &[8000],
    &[("web", 8000, TCP, FIRST_FREE)],
    vec![moved(8000, "web", FIRST_FREE)]
)]
#[case::taken_ports_are_not_handed_out(
    "[port.web]\ncontainer = 8000\n",
    &[], &[], &[], &[8000, FIRST_FREE, FIRST_FREE + 1],
    &[("web", 8000, TCP, FIRST_FREE + 2)],
    vec![moved(8000, "web", FIRST_FREE + 2)]
)]
#[case::busy_ports_are_not_handed_out(
    "[port.web]\ncontainer = 8000\n",
    &[], &[], &[8000, FIRST_FREE], &[],
    &[("web", 8000, TCP, FIRST_FREE + 1)],
    vec![moved(8000, "web", FIRST_FREE + 1)]
)]
#[case::two_ports_wanting_one_host_port(
    "[port.web]\ncontainer = 8000\n[port.admin]\ncontainer = 8001\nhost = 8000\n",
    &[], &[], &[], &[],
    &[("admin", 8001, TCP, 8000), ("web", 8000, TCP, FIRST_FREE)],
    vec![moved(8000, "web", FIRST_FREE)]
)]
#[case::udp_port(
    "[port.dns]\ncontainer = 53\nhost = 5353\nprotocol = \"udp\"\n",
    &[], &[], &[], &[],
    &[("dns", 53, UDP, 5353)],
    vec![]
)]
#[case::container_port_from_env(
    "[env]\nPORT = 8080\n[port.web]\ncontainer = { key = \"PORT\" }\n",
    &[], &[], &[], &[],
    &[("web", 8080, TCP, 8080)],
    vec![]
)]
#[case::container_port_from_a_string_env(
    "[env]\nPORT = \"8080\"\n[port.web]\ncontainer = { key = \"PORT\" }\n",
    &[], &[], &[], &[],
    &[("web", 8080, TCP, 8080)],
    vec![]
)]
#[case::container_port_from_an_override(
    "[env]\nPORT = 8080\n[port.web]\ncontainer = { key = \"PORT\" }\n",
    &[], &[("PORT", "7000")], &[], &[],
    &[("web", 7000, TCP, 7000)],
    vec![]
)]
#[case::host_port_from_env(
    "[env]\nHOST_PORT = \"9100\"\n[port.web]\ncontainer = 8000\nhost = { key = \"HOST_PORT\" }\n",
    &[], &[], &[], &[],
    &[("web", 8000, TCP, 9100)],
    vec![]
)]
#[case::container_port_unknown(
    "[port.web]\ncontainer = { key = \"PORT\" }\n",
    &[], &[], &[], &[],
    &[],
    vec!["the port `web` is not published: its container port is only known to a deployment".into()]
)]
#[case::exposed_ports_not_in_the_config(
    "[port.web]\ncontainer = 8000\n",
    &["8000/tcp", "5432/tcp", "53/udp", "9999"], &[], &[], &[],
    &[
        ("web", 8000, TCP, 8000),
        ("5432/tcp", 5432, TCP, 5432),
        ("53/udp", 53, UDP, 53),
        ("9999", 9999, TCP, 9999),
    ],
    vec![]
)]
#[case::exposed_port_of_another_protocol(
    "[port.web]\ncontainer = 8000\n",
    &["8000/udp"], &[], &[], &[],
    &[("web", 8000, TCP, 8000), ("8000/udp", 8000, UDP, 8000)],
    vec![]
)]
#[case::exposed_busy_port_moved(
    "[port.web]\ncontainer = 8000\n",
    &["8000/tcp", "5432/tcp"], &[], &[5432], &[],
    &[("web", 8000, TCP, 8000), ("5432/tcp", 5432, TCP, FIRST_FREE)],
    vec![moved(5432, "5432/tcp", FIRST_FREE)]
)]
#[case::exposed_port_moved_off_a_config_port(
    "[port.web]\ncontainer = 8000\nhost = 5432\n",
    &["5432/tcp"], &[], &[], &[],
    &[("web", 8000, TCP, 5432), ("5432/tcp", 5432, TCP, FIRST_FREE)],
    vec![moved(5432, "5432/tcp", FIRST_FREE)]
)]
fn ports(
    #[case] extra: &str,
    #[case] exposed: &[&str],
    #[case] env: &[(&str, &str)],
    #[case] busy: &[u16],
    #[case] taken: &[u16],
    #[case] expected: &[(&str, u16, Protocol, u16)],
    #[case] notes: Vec<String>,
) {
    let plan = plan(
        &request(Some(extra), exposed, env),
        &Ports::busy(busy),
        taken,
    )
    .unwrap();
    let published: Vec<(&str, u16, Protocol, u16)> = plan
        .published
        .iter()
        .map(|p| (p.name.as_str(), p.container, p.protocol, p.host))
        .collect();
    assert_eq!(published, expected);
    assert_eq!(plan.notes, notes);
    let localhost: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(plan.published.iter().all(|p| p.host_ip == localhost));
    let bindings: Vec<PortBinding> = expected
        .iter()
        .map(|&(_, container, protocol, host)| PortBinding {
            container,
            protocol,
            host_ip: localhost,
            host,
        })
        .collect();
    assert_eq!(plan.spec.ports, bindings);
}

#[rstest]
#[case::no_config(None, &["80/tcp"], &[("80/tcp", 80)])]
#[case::no_ports(Some(""), &[], &[])]
#[case::exposed_only(Some(""), &["3000/tcp"], &[("3000/tcp", 3000)])]
fn ports_without_config_ports(
    #[case] extra: Option<&str>,
    #[case] exposed: &[&str],
    #[case] expected: &[(&str, u16)],
) {
    let plan = plan(&request(extra, exposed, &[]), &Ports::free(), &[]).unwrap();
    let published: Vec<(&str, u16)> = plan
        .published
        .iter()
        .map(|p| (p.name.as_str(), p.host))
        .collect();
    assert_eq!(published, expected);
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
}

#[test]
fn no_free_port_left_is_an_error() {
    let request = request(Some("[port.web]\ncontainer = 8000\n"), &[], &[]);
    let err = plan(&request, &Ports::exhausted(), &[8000]).unwrap_err();
    assert!(
        matches!(&err, Error::NoFreePort { name, protocol: Protocol::Tcp } if name == "web"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no free tcp port left on 127.0.0.1 for `web`"
    );
}

#[rstest]
#[case::plain_values(
    "[env]\nA = \"x\"\nB = true\nC = 42\nD = 2.5\nE = false\n",
    &[],
    &[("A", "x"), ("B", "true"), ("C", "42"), ("D", "2.5"), ("E", "false")],
    &[]
)]
#[case::override_wins(
    "[env]\nA = \"x\"\nB = 1\n",
    &[("A", "y")],
    &[("A", "y"), ("B", "1")],
    &[]
)]
#[case::override_of_a_key_not_in_the_config(
    "[env]\nA = \"x\"\n",
    &[("Z", "z=with=equals")],
    &[("A", "x"), ("Z", "z=with=equals")],
    &[]
)]
#[case::last_override_wins(
    "",
    &[("A", "1"), ("A", "2")],
    &[("A", "2")],
    &[]
)]
#[case::value_from_a_provider(
    "[[provider]]\nname = \"db\"\n[env]\nA = \"x\"\nDB_HOST = { from = \"db\", key = \"hostname\" }\n",
    &[],
    &[("A", "x")],
    &["`DB_HOST` is computed by a deployment (from a provider); it is not set: give it with `--env DB_HOST=…`"]
)]
#[case::unique_user(
    "[env]\nDB_USER = { unique_user = true }\n",
    &[],
    &[],
    &["`DB_USER` is computed by a deployment (a unique user name); it is not set: give it with `--env DB_USER=…`"]
)]
#[case::unique_db(
    "[env]\nDB_NAME = { unique_db = \"true\" }\n",
    &[],
    &[],
    &["`DB_NAME` is computed by a deployment (a unique database name); it is not set: give it with `--env DB_NAME=…`"]
)]
#[case::computed_value_given_as_an_override(
    "[[provider]]\nname = \"db\"\n[env]\nDB_HOST = { from = \"db\", key = \"hostname\" }\nDB_USER = { unique_user = true }\n",
    &[("DB_HOST", "localhost"), ("DB_USER", "me")],
    &[("DB_HOST", "localhost"), ("DB_USER", "me")],
    &[]
)]
#[case::random_value_given_as_an_override(
    "[env]\nSECRET = { random = true, length = 12 }\n",
    &[("SECRET", "mine")],
    &[("SECRET", "mine")],
    &[]
)]
fn environment(
    #[case] extra: &str,
    #[case] overrides: &[(&str, &str)],
    #[case] expected: &[(&str, &str)],
    #[case] notes: &[&str],
) {
    let plan = plan(&request(Some(extra), &[], overrides), &Ports::free(), &[]).unwrap();
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(effective(&plan.spec.env), expected, "{:?}", plan.spec.env);
    assert_eq!(plan.notes, notes);
}

#[test]
fn overrides_come_after_the_config_values() {
    let request = request(Some("[env]\nA = \"x\"\n"), &[], &[("A", "y")]);
    let plan = plan(&request, &Ports::free(), &[]).unwrap();
    let last = plan.spec.env.iter().rposition(|kv| kv.starts_with("A="));
    assert_eq!(last.map(|i| plan.spec.env[i].as_str()), Some("A=y"));
}

#[test]
fn no_config_sets_only_the_overrides() {
    let request = request(None, &[], &[("A", "1")]);
    let plan = plan(&request, &Ports::free(), &[]).unwrap();
    assert_eq!(plan.spec.env, ["A=1"]);
    assert!(plan.spec.mounts.is_empty());
    assert!(plan.volumes.is_empty());
    assert!(plan.notes.is_empty());
}

fn random_secret(extra: &str) -> String {
    let plan = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    effective(&plan.spec.env)
        .remove("SECRET")
        .expect("SECRET is set")
}

#[rstest]
#[case::length_12("[env]\nSECRET = { random = true, length = 12 }\n", 12)]
#[case::quoted_flag("[env]\nSECRET = { random = \"true\", length = 12 }\n", 12)]
#[case::default_length("[env]\nSECRET = { random = true }\n", 24)]
#[case::length_200("[env]\nSECRET = { random = true, length = 200 }\n", 200)]
fn random_values_are_generated(#[case] extra: &str, #[case] length: usize) {
    let first = random_secret(extra);
    let second = random_secret(extra);
    for value in [&first, &second] {
        assert_eq!(value.len(), length, "{value}");
        assert!(value.chars().all(|c| c.is_ascii_alphanumeric()), "{value}");
    }
    assert_ne!(first, second);
}

#[test]
fn long_random_values_have_their_length() {
    let value = random_secret("[env]\nSECRET = { random = true, length = 600 }\n");
    assert_eq!(value.len(), 600);
}

#[test]
fn short_random_values_always_have_their_length() {
    for _ in 0..20_000 {
        assert_eq!(random_value(1).len(), 1);
        assert_eq!(random_value(2).len(), 2);
    }
}

fn managed(name: &str, options: &[(&str, &str)], driver: Option<&str>) -> VolumeSpec {
    VolumeSpec {
        name: name.into(),
        driver: driver.map(Into::into),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        labels: BTreeMap::from([(APP_LABEL.to_owned(), APP.to_owned())]),
    }
}

fn volume(name: &str, target: &str, read_only: bool) -> Mount {
    Mount::Volume {
        name: name.into(),
        target: target.into(),
        read_only,
    }
}

fn bind(source: &str, target: &str, read_only: bool) -> Mount {
    Mount::Bind {
        source: source.into(),
        target: target.into(),
        read_only,
    }
}

fn tmpfs(target: &str, size_bytes: Option<i64>, mode: Option<i64>) -> Mount {
    Mount::Tmpfs {
        target: target.into(),
        size_bytes,
        mode,
    }
}

const GIB: i64 = 1024 * 1024 * 1024;
const MIB: i64 = 1024 * 1024;

#[rstest]
#[case::managed_named(
    "[[volume]]\nname = \"data\"\ntarget = \"/data\"\n",
    &[volume("app_data", "/data", false)],
    &[managed("app_data", &[], None)],
    &[]
)]
#[case::managed_typed(
    "[[volume]]\nname = \"data\"\ntype = \"managed\"\ntarget = \"/data\"\n",
    &[volume("app_data", "/data", false)],
    &[managed("app_data", &[], None)],
    &[]
)]
#[case::managed_unnamed(
    "[[volume]]\ntarget = \"/var/lib/my-app/\"\n",
    &[volume("app_var_lib_my_app", "/var/lib/my-app/", false)],
    &[managed("app_var_lib_my_app", &[], None)],
    &[]
)]
#[case::managed_with_driver_and_options(
    "[[volume]]\nname = \"remote\"\ntarget = \"/remote\"\ndriver = \"sshfs\"\n[volume.options]\nIdentityFile = \"/k\"\nport = 22\nread-only = true\n",
    &[volume("app_remote", "/remote", true)],
    &[managed("app_remote", &[("IdentityFile", "/k"), ("port", "22")], Some("sshfs"))],
    &[]
)]
#[case::read_only_as_a_string(
    "[[volume]]\nname = \"data\"\ntarget = \"/data\"\noptions = { read_only = \"true\" }\n",
    &[volume("app_data", "/data", true)],
    &[managed("app_data", &[], None)],
    &[]
)]
#[case::tmpfs_typed(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\n",
    &[tmpfs("/cache", None, None)],
    &[],
    &[]
)]
#[case::tmpfs_size_and_mode(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = { tmpfs_size = \"16m\", tmpfs_mode = 0o1777 }\n",
    &[tmpfs("/cache", Some(16 * MIB), Some(0o1777))],
    &[],
    &[]
)]
#[case::tmpfs_mode_as_octal_text(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = { size = \"10G\", mode = \"1777\" }\n",
    &[tmpfs("/cache", Some(10 * GIB), Some(1023))],
    &[],
    &[]
)]
#[case::tmpfs_mode_as_0o_text(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = { tmpfs-size = 1048576, tmpfs-mode = \"0o700\" }\n",
    &[tmpfs("/cache", Some(MIB), Some(0o700))],
    &[],
    &[]
)]
#[case::directory(
    "[[volume]]\ntype = \"directory\"\nname = \"/srv/nua-test-not-created\"\ntarget = \"/data\"\n",
    &[bind("/srv/nua-test-not-created", "/data", false)],
    &[],
    &["/srv/nua-test-not-created"]
)]
#[case::bind(
    "[[volume]]\ntype = \"bind\"\nname = \"/\"\ntarget = \"/host\"\noptions = { read-only = true }\n",
    &[bind("/", "/host", true)],
    &[],
    &[]
)]
#[case::every_kind_in_order(
    "[[volume]]\nname = \"data\"\ntarget = \"/data\"\n\
     [[volume]]\ntype = \"tmpfs\"\ntarget = \"/tmp\"\n\
     [[volume]]\ntype = \"directory\"\nname = \"/srv/d\"\ntarget = \"/d\"\n\
     [[volume]]\ntype = \"bind\"\nname = \"/\"\ntarget = \"/b\"\n\
     [[volume]]\nname = \"logs\"\ntarget = \"/logs\"\n",
    &[
        volume("app_data", "/data", false),
        tmpfs("/tmp", None, None),
        bind("/srv/d", "/d", false),
        bind("/", "/b", false),
        volume("app_logs", "/logs", false),
    ],
    &[managed("app_data", &[], None), managed("app_logs", &[], None)],
    &["/srv/d"]
)]
fn volumes(
    #[case] extra: &str,
    #[case] mounts: &[Mount],
    #[case] specs: &[VolumeSpec],
    #[case] directories: &[&str],
) {
    let plan = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(plan.spec.mounts, mounts);
    assert_eq!(plan.volumes, specs);
    let directories: Vec<PathBuf> = directories.iter().map(PathBuf::from).collect();
    assert_eq!(plan.directories, directories);
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
}

/// The original Nua's samples write a tmpfs without `type`, with `tmpfs_*` options.
#[test]
fn an_untyped_volume_with_tmpfs_options_is_a_tmpfs() {
    let extra = "[[volume]]\nname = \"tmpfs\"\ntarget = \"/var/tmp/mount_point\"\n\
                 [volume.options]\ntmpfs_size = \"10G\"\ntmpfs_mode = 0o1777\n";
    let plan = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(
        plan.spec.mounts,
        [tmpfs("/var/tmp/mount_point", Some(10 * GIB), Some(1023))]
    );
    assert!(plan.volumes.is_empty(), "{:?}", plan.volumes);
}

/// The same volume as [`an_untyped_volume_with_tmpfs_options_is_a_tmpfs`], as `plan` gets it
/// when the config was not normalized (`type` absent).
#[test]
fn an_unnormalized_volume_with_tmpfs_options_is_a_tmpfs() {
    let extra = "[[volume]]\nname = \"tmpfs\"\ntarget = \"/var/tmp/mount_point\"\n\
                 [volume.options]\ntmpfs_size = \"10G\"\ntmpfs_mode = 0o1777\n";
    let mut request = request(Some(extra), &[], &[]);
    if let Some(config) = &mut request.config {
        config.volume[0].kind = None;
    }
    let plan = plan(&request, &Ports::free(), &[]).unwrap();
    assert_eq!(
        plan.spec.mounts,
        [tmpfs("/var/tmp/mount_point", Some(10 * GIB), Some(1023))]
    );
    assert!(plan.volumes.is_empty(), "{:?}", plan.volumes);
}

#[rstest]
#[case("\"ten\"", "ten")]
#[case("\"10x\"", "10x")]
#[case("\"G\"", "G")]
#[case("\"\"", "")]
#[case("\"-1\"", "-1")]
#[case("-1", "-1")]
fn a_bad_tmpfs_size_is_refused(#[case] written: &str, #[case] value: &str) {
    let extra = format!(
        "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = {{ tmpfs_size = {written} }}\n"
    );
    let err = plan(&request(Some(&extra), &[], &[]), &Ports::free(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::BadSize { target, option, value: v } if option == "tmpfs_size" && target == "/cache" && v == value),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "`tmpfs_size = \"{value}\"` of the volume `/cache` is not a size (like `64m` or `1G`)"
        )
    );
}

#[rstest]
#[case("10G", 10 * GIB)]
#[case("16m", 16 * MIB)]
#[case("64MB", 64 * MIB)]
#[case("512k", 512 * 1024)]
#[case("1048576", MIB)]
#[case("1.5g", 3 * GIB / 2)]
#[case(" 2 G ", 2 * GIB)]
#[case("1t", 1024 * GIB)]
#[case("0", 0)]
fn sizes(#[case] text: &str, #[case] bytes: i64) {
    assert_eq!(parse_size(text), Some(bytes));
}

#[test]
fn a_missing_bind_source_is_refused() {
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    let extra = format!(
        "[[volume]]\ntype = \"bind\"\nname = \"{}\"\ntarget = \"/data\"\n",
        missing.display()
    );
    let err = plan(&request(Some(&extra), &[], &[]), &Ports::free(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::NoBindSource { path, target } if *path == missing && target == "/data"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the host folder `{}` of the bind volume `/data` does not exist",
            missing.display()
        )
    );
}

#[test]
fn an_existing_bind_source_is_mounted() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[volume]]\ntype = \"bind\"\nname = \"{}\"\ntarget = \"/data\"\n",
        dir.path().display()
    );
    let plan = plan(&request(Some(&extra), &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(
        plan.spec.mounts,
        [Mount::Bind {
            source: dir.path().to_path_buf(),
            target: "/data".into(),
            read_only: false,
        }]
    );
    assert!(plan.directories.is_empty());
}

#[rstest]
#[case::with_config(Some("[port.web]\ncontainer = 8000\n"))]
#[case::without_config(None)]
fn the_container_is_named_and_labelled(#[case] extra: Option<&str>) {
    let plan = plan(&request(extra, &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(plan.spec.name, APP);
    assert_eq!(plan.spec.image, IMAGE);
    assert_eq!(plan.spec.network, None);
    assert_eq!(
        plan.spec.labels,
        BTreeMap::from([
            ("nua.app".to_owned(), APP.to_owned()),
            ("nua.image".to_owned(), IMAGE.to_owned()),
        ])
    );
}

#[test]
fn random_values_of_an_earlier_run_are_kept() {
    let extra = "[env]\nSECRET = { random = true, length = 12 }\n";
    let first = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    let secret = first.random["SECRET"].clone();
    assert_eq!(secret.len(), 12);
    assert_eq!(effective(&first.spec.env)["SECRET"], secret);

    let mut again = request(Some(extra), &[], &[]);
    again.kept = first.random.clone();
    let second = plan(&again, &Ports::free(), &[]).unwrap();
    assert_eq!(effective(&second.spec.env)["SECRET"], secret);
    assert_eq!(second.random, first.random);

    // A kept value that no longer fits the config (its length changed) is made again.
    again.kept.insert("SECRET".into(), "short".into());
    let third = plan(&again, &Ports::free(), &[]).unwrap();
    assert_eq!(third.random["SECRET"].len(), 12);
    assert_ne!(third.random["SECRET"], "short");
}
