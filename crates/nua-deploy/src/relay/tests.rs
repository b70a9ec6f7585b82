//! The relay on real sockets of 127.0.0.1: echo servers stand for the containers.

use super::*;

/// A server on a free port of 127.0.0.1 that answers each line with `tag: line`, until the
/// client closes. Returns its address.
fn server(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut reader = io::BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                let mut line = String::new();
                while io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) > 0 {
                    if writer
                        .write_all(format!("{tag}: {line}").as_bytes())
                        .is_err()
                    {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One exchange on an open connection.
fn ask(conn: &mut TcpStream, line: &str) -> String {
    conn.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while conn.read(&mut byte).unwrap() == 1 {
        answer.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(answer).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn
}

#[test]
fn a_connection_made_before_any_target_waits_for_one() {
    let held = free_addr();
    let relay = Relay::bind(&[held]).unwrap();
    let mut early = connect(held);
    let asking = std::thread::spawn(move || ask(&mut early, "hello"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!asking.is_finished(), "answered with no target set");
    relay.switch([(held.port(), server("one"))].into());
    assert_eq!(asking.join().unwrap(), "one: hello\n");
}

#[test]
fn a_switch_moves_new_connections_and_lets_open_ones_drain() {
    let held = free_addr();
    let relay = Relay::bind(&[held]).unwrap();
    let first = relay.switch([(held.port(), server("old"))].into());
    let mut open = connect(held);
    assert_eq!(ask(&mut open, "a"), "old: a\n");

    let second = relay.switch([(held.port(), server("new"))].into());
    assert!(second > first);
    assert_eq!(ask(&mut connect(held), "b"), "new: b\n");
    // The connection made before the switch still talks to the old server.
    assert_eq!(ask(&mut open, "c"), "old: c\n");
    assert!(!relay.drained(second), "an old connection is still open");
    assert!(!relay.drain(second, Duration::from_millis(100)));
    drop(open);
    assert!(relay.drain(second, Duration::from_secs(5)));
    assert!(relay.accepted() >= 2);
}

#[test]
fn a_refused_target_closes_the_client_and_the_port_is_released_on_drop() {
    let held = free_addr();
    let relay = Relay::bind(&[held]).unwrap();
    // Nothing listens there.
    relay.switch([(held.port(), free_addr())].into());
    let mut conn = connect(held);
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).unwrap_or(0), 0, "the client is closed");
    drop(relay);
    assert!(TcpListener::bind(held).is_ok(), "the port is free again");
}

#[test]
fn binding_a_port_in_use_says_which() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Relay::bind(&[addr]).err().expect("the port is taken");
    assert_eq!(err.addr, addr);
    assert!(err.to_string().contains(&addr.to_string()));
}
