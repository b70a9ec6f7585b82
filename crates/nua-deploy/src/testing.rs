//! What the unit tests of `local` and `supervise` share: a minimal nua-config, a loader of
//! nua-configs written inline, and host ports that are free or busy as a test says.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::Path;

use super::local::HostPorts;
use nua_config::{load_str, Format, LoadOptions, NuaConfig};
use nua_runtime::Protocol;

pub const MINIMAL: &str = "[metadata]\nid = \"app\"\nversion = \"1.0\"\nrelease = 1\n";
pub const APP: &str = "app";
pub const IMAGE: &str = "nua-app:1.0-1";
/// Where [`Ports::any_free`] starts counting.
pub const FIRST_FREE: u16 = 40000;

/// The nua-config [`MINIMAL`] followed by `extra`.
pub fn config(extra: &str) -> NuaConfig {
    let text = format!("{MINIMAL}{extra}");
    load_str(
        &text,
        Format::Toml,
        Path::new("nua-config.toml"),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
    .0
}

/// Host ports: those in `busy` are in use, the others free; `any_free` hands out ports
/// from a counter, skipping busy ones and those it is told to avoid.
pub struct Ports {
    pub busy: BTreeSet<u16>,
    pub next: Cell<u16>,
}

impl Ports {
    pub fn free() -> Ports {
        Ports::busy(&[])
    }

    pub fn busy(ports: &[u16]) -> Ports {
        Ports {
            busy: ports.iter().copied().collect(),
            next: Cell::new(FIRST_FREE),
        }
    }

    /// No port is free but the ones asked for by number.
    pub fn exhausted() -> Ports {
        Ports {
            busy: BTreeSet::new(),
            next: Cell::new(u16::MAX),
        }
    }
}

impl HostPorts for Ports {
    fn is_free(&self, port: u16, _protocol: Protocol) -> bool {
        !self.busy.contains(&port)
    }

    fn any_free(&self, _protocol: Protocol, not: &[u16]) -> Option<u16> {
        loop {
            let port = self.next.get();
            if port == u16::MAX {
                return None;
            }
            self.next.set(port + 1);
            if !self.busy.contains(&port) && !not.contains(&port) {
                return Some(port);
            }
        }
    }
}
