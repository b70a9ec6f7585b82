//! Host ports: the config's, the image's, busy ones moved.

use super::*;

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
