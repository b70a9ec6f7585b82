//! How host ids map into the sandbox's user namespace, and writing those maps.

use std::ffi::CStr;
use std::path::Path;
use std::process::Command;

use super::error::{Error, IoContext, Result};

/// How ids inside the sandbox map to ids on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// Running as root: every id maps to itself.
    Identity,
    /// Inside 0 is the calling user; inside 1..=count are its subordinate ranges from
    /// `/etc/subuid` and `/etc/subgid`, mapped with `newuidmap`/`newgidmap`.
    Subordinate {
        uid: u32,
        gid: u32,
        /// First host id and length of the subordinate uid range.
        uids: (u32, u32),
        gids: (u32, u32),
    },
    /// Only inside 0 exists (the calling user): files of other owners become root's.
    Single { uid: u32, gid: u32 },
}

impl Mapping {
    /// Whether the inside uid (or gid: ranges are probed together) `id` exists.
    pub fn maps(&self, id: u32) -> bool {
        match self {
            Mapping::Identity => true,
            Mapping::Subordinate { uids, gids, .. } => id <= uids.1.min(gids.1),
            Mapping::Single { .. } => id == 0,
        }
    }

    /// A short description for logs: `identity`, `subordinate 100000+65536`, `single uid 1000`.
    pub fn describe(&self) -> String {
        match self {
            Mapping::Identity => "identity (running as root)".into(),
            Mapping::Subordinate { uids, .. } => {
                format!("subordinate ids {}+{} via newuidmap", uids.0, uids.1)
            }
            Mapping::Single { uid, .. } => format!("single id (inside 0 is host uid {uid})"),
        }
    }
}

/// Work out the mapping for the calling user, plus a warning when only a single id can be
/// mapped.
pub(crate) fn detect() -> (Mapping, Option<String>) {
    // SAFETY: these calls cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        return (Mapping::Identity, None);
    }
    let name = user_name(uid);
    let key = name.clone().unwrap_or_else(|| uid.to_string());
    let ranges = (
        subordinate(Path::new("/etc/subuid"), name.as_deref(), uid),
        subordinate(Path::new("/etc/subgid"), name.as_deref(), uid),
    );
    let tools = tool("newuidmap") && tool("newgidmap");
    match ranges {
        (Some(uids), Some(gids)) if tools => (
            Mapping::Subordinate {
                uid,
                gid,
                uids,
                gids,
            },
            None,
        ),
        _ => (
            Mapping::Single { uid, gid },
            Some(format!(
                "only one id can be mapped into the sandbox (no `newuidmap`/`newgidmap` or no \
                 subordinate ids for `{key}`): files owned by other users (e.g. `_apt`, \
                 `messagebus`) become root's, and steps that change owners fail\n\
                 hint: `apt-get install uidmap` and `usermod --add-subuids 100000-165535 \
                 --add-subgids 100000-165535 {key}`"
            )),
        ),
    }
}

/// Whether `name` is an executable in the usual places.
fn tool(name: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(name).is_file())
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: zeroed passwd is a valid out-parameter; buf outlives the returned pointers.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call and buf's length is given.
    let r = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The first range of `file` (`name:start:count`, by name or uid) for this user.
fn subordinate(file: &Path, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    parse_subordinate(&text, name, uid)
}

fn parse_subordinate(text: &str, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let owner = parts.next()?;
        let (start, count) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        let ours = owner == uid || Some(owner) == name;
        (ours && count > 0).then_some((start, count))
    })
}

/// Write the uid/gid maps of `pid`, a child that has just unshared its user namespace.
pub(crate) fn write_maps(mapping: &Mapping, pid: libc::pid_t) -> Result<()> {
    let proc = |file: &str| format!("/proc/{pid}/{file}");
    let write = |file: &str, text: &str| std::fs::write(proc(file), text).at(proc(file));
    match mapping {
        Mapping::Identity => {
            write("uid_map", "0 0 4294967295\n")?;
            write("gid_map", "0 0 4294967295\n")
        }
        Mapping::Single { uid, gid } => {
            // An unprivileged process may map only its own id, and gid only after giving up
            // setgroups (user_namespaces(7)).
            write("uid_map", &format!("0 {uid} 1\n"))?;
            write("setgroups", "deny")?;
            write("gid_map", &format!("0 {gid} 1\n"))
        }
        Mapping::Subordinate {
            uid,
            gid,
            uids,
            gids,
        } => {
            run_map_tool("newuidmap", pid, *uid, *uids)?;
            run_map_tool("newgidmap", pid, *gid, *gids)
        }
    }
}

fn run_map_tool(tool: &str, pid: libc::pid_t, own: u32, range: (u32, u32)) -> Result<()> {
    let args = [pid.to_string(), "0".into(), own.to_string(), "1".into()]
        .into_iter()
        .chain(["1".into(), range.0.to_string(), range.1.to_string()]);
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| Error::IdMap {
            tool: tool.into(),
            message: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::IdMap {
        tool: tool.into(),
        message: format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(
            parse_subordinate(text, Some("alice"), 1000),
            Some((100000, 65536))
        );
        assert_eq!(parse_subordinate(text, None, 1001), Some((200000, 1000)));
        assert_eq!(parse_subordinate(text, Some("bob"), 1002), None);
        assert_eq!(parse_subordinate("garbage\n", Some("x"), 1), None);
    }

    #[test]
    fn mapped_ids() {
        let sub = Mapping::Subordinate {
            uid: 1000,
            gid: 1000,
            uids: (100000, 65536),
            gids: (100000, 1000),
        };
        assert!(sub.maps(0) && sub.maps(1000) && !sub.maps(1001));
        assert!(Mapping::Single { uid: 5, gid: 5 }.maps(0));
        assert!(!Mapping::Single { uid: 5, gid: 5 }.maps(1));
    }
}
