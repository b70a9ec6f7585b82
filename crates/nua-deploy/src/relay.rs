//! Host ports that Nua holds itself and forwards to whichever container serves now
//! (`nua run --watch`): the port a user opened in a browser stays the same while the container
//! behind it is replaced, and a connection is never refused in between.
//!
//! Each held port has a listener thread. A connection accepted while no container serves yet
//! waits (at most [`WAIT_FOR_TARGET`]) for one; otherwise it is joined, at accept time, to the
//! current target and stays with it until either side closes. [`Relay::switch`] changes the
//! target of new connections only: those already open drain on the old container, and
//! [`Relay::drained`] says when none is left.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection accepted before any container serves waits for one.
pub const WAIT_FOR_TARGET: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
#[error("cannot hold the port {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: io::Error,
}

/// Where new connections go: per held port, the container's address (`None`: nothing serves).
#[derive(Default)]
struct Targets {
    by_port: BTreeMap<u16, SocketAddr>,
    /// Bumped by every switch; each connection remembers the one it was made under.
    generation: u64,
}

struct Shared {
    targets: Mutex<Targets>,
    changed: Condvar,
    stop: AtomicBool,
    /// Open connections per generation.
    open: Mutex<BTreeMap<u64, usize>>,
    accepted: AtomicU64,
}

/// Held host ports and their forwarding threads; dropping it closes the ports (open
/// connections finish on their own).
pub struct Relay {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    listeners: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Listen on every address of `addrs` (each a held port, forwarded once a target is set).
    pub fn bind(addrs: &[SocketAddr]) -> Result<Relay, BindError> {
        let shared = Arc::new(Shared {
            targets: Mutex::new(Targets::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            open: Mutex::new(BTreeMap::new()),
            accepted: AtomicU64::new(0),
        });
        let mut bound = Vec::new();
        for addr in addrs {
            let listener = TcpListener::bind(addr).map_err(|source| BindError {
                addr: *addr,
                source,
            })?;
            bound.push((*addr, listener));
        }
        let listeners = bound
            .into_iter()
            .map(|(addr, listener)| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || accept_loop(&listener, addr.port(), &shared))
            })
            .collect();
        Ok(Relay {
            shared,
            addrs: addrs.to_vec(),
            listeners,
        })
    }

    /// Send new connections of each held port (the key) to the address given, or hold them
    /// while `targets` is empty. Returns the generation now current.
    pub fn switch(&self, targets: BTreeMap<u16, SocketAddr>) -> u64 {
        let mut current = lock(&self.shared.targets);
        current.by_port = targets;
        current.generation += 1;
        self.shared.changed.notify_all();
        current.generation
    }

    /// Whether no connection made before generation `current` is still open.
    pub fn drained(&self, current: u64) -> bool {
        self.handle().drained(current)
    }

    /// Wait until [`Relay::drained`], at most `timeout`; whether it drained.
    pub fn drain(&self, current: u64, timeout: Duration) -> bool {
        self.handle().drain(current, timeout)
    }

    /// What another thread needs to wait for connections to drain.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle(Arc::clone(&self.shared))
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

/// The connection counts of a [`Relay`], for a thread of its own.
pub struct RelayHandle(Arc<Shared>);

impl RelayHandle {
    /// Whether no connection made before generation `current` is still open.
    pub fn drained(&self, current: u64) -> bool {
        lock(&self.0.open)
            .iter()
            .all(|(generation, open)| *generation >= current || *open == 0)
    }

    /// Wait until [`RelayHandle::drained`], at most `timeout`; whether it drained.
    pub fn drain(&self, current: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.drained(current) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wake each listener blocked in `accept` so that it sees the flag.
        for addr in &self.addrs {
            let _ = TcpStream::connect_timeout(addr, Duration::from_millis(200));
        }
        for listener in self.listeners.drain(..) {
            let _ = listener.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: &TcpListener, port: u16, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let Some((target, generation)) = target_of(&shared, port) else {
                return;
            };
            *lock(&shared.open).entry(generation).or_default() += 1;
            forward(client, target);
            let mut open = lock(&shared.open);
            if let Some(count) = open.get_mut(&generation) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&generation);
                }
            }
        });
    }
}

/// The target of `port` now, waiting for one while there is none.
fn target_of(shared: &Shared, port: u16) -> Option<(SocketAddr, u64)> {
    let deadline = Instant::now() + WAIT_FOR_TARGET;
    let mut targets = lock(&shared.targets);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(addr) = targets.by_port.get(&port) {
            return Some((*addr, targets.generation));
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        targets = shared
            .changed
            .wait_timeout(targets, left.min(Duration::from_millis(500)))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Copy both ways between `client` and a new connection to `target` until both directions
/// end; a refused target closes the client.
fn forward(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect(target) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client_read), Ok(upstream_write)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pipe(client_read, upstream_write));
    pipe(upstream, client);
    let _ = up.join();
}

/// Copy `from` to `to` until `from` ends, then end `to`'s writing side (half-close), so that
/// the other direction can finish.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    // The other side is gone: stop reading too.
                    let _ = from.shutdown(Shutdown::Read);
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests;
