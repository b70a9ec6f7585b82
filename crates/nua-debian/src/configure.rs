//! The second stage of a bootstrap, as a POSIX sh script run as root inside the new root
//! after [`unpack_layer`](super::unpack_layer): `preinst install` of each new package in
//! dependency order, `dpkg --configure -a`, then removal of what a run leaves that differs
//! from one run to the next (logs, `*-old` backups, caches).
//!
//! The order comes from the packages' own control files (read from their `.deb` in the
//! store), so a build from a lock file needs no index.

use std::collections::{BTreeMap, BTreeSet};

use nua_oci::BlobStore;

use super::deb::{self, Part};
use super::deb822;
use super::download::package_digest;
use super::dpkg_db;
use super::error::{Error, Result};
use super::relation;
use super::resolve::Locked;

/// The environment the script expects (the sandbox passes nothing else).
pub fn configure_env(source_date_epoch: u64) -> Vec<(String, String)> {
    [
        ("DEBIAN_FRONTEND", "noninteractive".to_owned()),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true".to_owned()),
        ("LC_ALL", "C".to_owned()),
        ("SOURCE_DATE_EPOCH", source_date_epoch.to_string()),
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("HOME", "/root".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The script for `pkgs` (their `.deb` files must be in `store`).
pub fn configure_script(pkgs: &[Locked], store: &BlobStore) -> Result<String> {
    // name → (info key, names it depends on)
    let mut graph: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for pkg in pkgs {
        let digest = package_digest(pkg)?;
        if !store.contains(&digest) {
            return Err(Error::NotDownloaded {
                package: pkg.name.clone(),
            });
        }
        let mut control = None;
        deb::walk(store.open_blob(&digest)?, &pkg.name, |part, stream| {
            if part == Part::Control {
                control = Some(deb::read_control(stream, &pkg.name)?);
            }
            Ok(())
        })?;
        let files = control.expect("walk checks control is there");
        let text = String::from_utf8_lossy(&files["control"]);
        let para = deb822::parse(&text, &format!("{} control", pkg.name))?
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut deps = BTreeSet::new();
        for field in ["Pre-Depends", "Depends"] {
            let groups = relation::parse(para.get(field).unwrap_or(""), &pkg.architecture)?;
            deps.extend(groups.into_iter().flatten().map(|d| d.name));
        }
        let arch = para.get("Architecture").unwrap_or(&pkg.architecture);
        let call = format!("{} {} {arch}", dpkg_db::info_key(&para), pkg.name);
        graph.insert(pkg.name.clone(), (call, deps));
    }
    let order = dependency_order(&graph);
    let mut script = String::from(PROLOGUE);
    for call in order {
        script.push_str(&format!("preinst {call}\n"));
    }
    script.push_str(EPILOGUE);
    Ok(script)
}

/// Preinst calls (`key name arch`) with dependencies first; ties and cycles broken by name.
fn dependency_order(graph: &BTreeMap<String, (String, BTreeSet<String>)>) -> Vec<String> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    while done.len() < graph.len() {
        let ready = graph.iter().find(|(name, (_, deps))| {
            !done.contains(name.as_str())
                && deps
                    .iter()
                    .all(|d| d == *name || !graph.contains_key(d) || done.contains(d.as_str()))
        });
        // In a cycle nothing is ready: take the first remaining name.
        let (name, (key, _)) = ready.unwrap_or_else(|| {
            graph
                .iter()
                .find(|(n, _)| !done.contains(n.as_str()))
                .expect("some package is left")
        });
        done.insert(name);
        order.push(key.clone());
    }
    order
}

const PROLOGUE: &str = r#"#!/bin/sh
# Second stage of a Debian bootstrap (written by nua): run the preinst scripts of the
# unpacked packages, configure them, then remove what differs from one run to the next.
set -eu
cd /
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C
: "${PATH:=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"
export PATH
# No daemon may start inside an image build (invoke-rc.d's policy-rc.d interface).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
preinst() {
    f="/var/lib/dpkg/info/$1.preinst"
    if [ -x "$f" ]; then
        # The environment dpkg gives maintainer scripts (dpkg(1), "ENVIRONMENT").
        DPKG_MAINTSCRIPT_PACKAGE="$2" DPKG_MAINTSCRIPT_ARCH="$3" \
        DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 \
        DPKG_ADMINDIR=/var/lib/dpkg DPKG_ROOT= "$f" install || { echo "nua: preinst of $1 failed" >&2; exit 1; }
    fi
}
"#;

const EPILOGUE: &str = r#"dpkg --configure -a --force-confdef --force-confold --force-unsafe-io
rm -f /usr/sbin/policy-rc.d
rm -f /var/log/dpkg.log /var/log/alternatives.log /var/log/bootstrap.log
rm -rf /var/log/apt/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} + 2>/dev/null || true
rm -f /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old /var/lib/dpkg/*-old
rm -f /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- /etc/subuid- /etc/subgid-
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_first_and_cycles_broken_by_name() {
        let g = |deps: &[(&str, &[&str])]| {
            deps.iter()
                .map(|(n, d)| {
                    let deps = d.iter().map(|s| s.to_string()).collect();
                    (n.to_string(), (format!("{n}:k"), deps))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let order = dependency_order(&g(&[
            ("app", &["libc", "zlib"]),
            ("libc", &["gcc-base", "outside"]),
            ("gcc-base", &[]),
            ("zlib", &["libc"]),
            ("x", &["y"]),
            ("y", &["x"]),
        ]));
        assert_eq!(
            order,
            ["gcc-base:k", "libc:k", "zlib:k", "app:k", "x:k", "y:k"]
        );
    }

    #[test]
    fn env_has_source_date_epoch() {
        let env = configure_env(42);
        assert!(env.contains(&("SOURCE_DATE_EPOCH".to_owned(), "42".to_owned())));
    }
}
