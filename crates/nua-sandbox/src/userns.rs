//! Entering a new user namespace: fork a child, let it unshare, map its ids from the
//! parent, then run something in it.
//!
//! [`in_namespace`] runs a Rust closure as root of a fresh user + mount namespace and hands
//! its result back; unpacking, reading, committing and removing roots go through it, since
//! their files may belong to subordinate ids the host user can neither read nor remove.

use std::os::fd::AsRawFd;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::idmap::{write_maps, Mapping};
use super::sys;

/// Fork a child that unshares `flags` (which include `CLONE_NEWUSER`), waits until the
/// parent has written its id maps, then runs `body` and exits with its return value.
///
/// The child gets `SIGKILL` when the calling *thread* exits (`PR_SET_PDEATHSIG`), so the
/// caller must stay in this thread until it has waited for the child. Returns its pid.
pub(crate) fn spawn(
    mapping: &Mapping,
    flags: libc::c_int,
    body: impl FnOnce() -> i32,
) -> Result<libc::pid_t> {
    let setup = |step: &str| {
        let step = step.to_owned();
        move |source| Error::Setup { step, source }
    };
    let (sync_r, sync_w) = sys::pipe().map_err(setup("creating a pipe"))?;
    let (go_r, go_w) = sys::pipe().map_err(setup("creating a pipe"))?;
    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only makes system calls and runs `body`, which callers keep to
    // what is safe after fork (glibc's fork leaves malloc usable in the child).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(setup("forking")(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: plain system calls on values we own.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                sys::exit_now(1);
            }
            // Files and folders made in the namespace get the same modes whatever the
            // caller's umask (a layer must not depend on it); commands get Docker's 022.
            libc::umask(0o022);
        }
        // SAFETY: unshare takes no pointers.
        let err = match unsafe { libc::unshare(flags) } {
            0 => 0,
            _ => sys::errno(),
        };
        let _ = sys::write_all(sync_w.as_raw_fd(), &err.to_ne_bytes());
        let mut go = [0u8; 1];
        if err != 0 || !matches!(sys::read_full(go_r.as_raw_fd(), &mut go), Ok(1)) {
            sys::exit_now(1);
        }
        sys::exit_now(body());
    }
    drop((sync_w, go_r));
    let kill = || {
        // SAFETY: `pid` is our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = sys::wait(pid);
    };
    let mut buf = [0u8; 4];
    match sys::read_full(sync_r.as_raw_fd(), &mut buf) {
        Ok(4) if buf == [0; 4] => {}
        Ok(4) => {
            kill();
            let source = std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf));
            return Err(setup("creating namespaces (`unshare`)")(source));
        }
        other => {
            kill();
            let source = other
                .err()
                .unwrap_or_else(|| std::io::Error::other("child died"));
            return Err(setup("waiting for the namespace child")(source));
        }
    }
    if let Err(e) = write_maps(mapping, pid) {
        kill();
        return Err(e);
    }
    if let Err(e) = sys::write_all(go_w.as_raw_fd(), &[1]) {
        kill();
        return Err(setup("releasing the namespace child")(e));
    }
    Ok(pid)
}

/// Set in a namespace child: its panics are not printed (the payload travels back).
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Install, once and in the parent, a panic hook that prints nothing in a namespace child.
/// The default hook writes to stderr, whose lock another thread of the caller (a progress
/// bar) may hold at fork time; and the child must not replace the hook itself: that takes
/// the hook's lock for writing, which a thread of the parent panicking at fork time holds
/// for reading, and the child would wait for it forever.
fn quiet_in_children() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CHILD.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

#[derive(Serialize, Deserialize)]
enum Reply<T> {
    Ok(T),
    Err(String),
}

/// Run `f` as root of a new user and mount namespace (mounts private) and return its
/// result; `task` names it in errors ("unpacking layer sha256:…").
pub(crate) fn in_namespace<T, F>(mapping: &Mapping, task: &str, f: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T>,
{
    let (res_r, res_w) = sys::pipe().map_err(|source| Error::Setup {
        step: "creating a pipe".into(),
        source,
    })?;
    let out = res_w.as_raw_fd();
    quiet_in_children();
    let pid = spawn(
        mapping,
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS,
        move || {
            IN_CHILD.store(true, Ordering::Relaxed);
            let result = sys::make_mounts_private()
                .map_err(|source| Error::Setup {
                    step: "making mounts private".into(),
                    source,
                })
                .and_then(|()| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(
                        |payload| {
                            let what = payload
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| payload.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            Err(Error::Command(format!("panicked: {what}")))
                        },
                    )
                });
            let reply = match result {
                Ok(v) => Reply::Ok(v),
                Err(e) => Reply::Err(error_chain(&e)),
            };
            let bytes = serde_json::to_vec(&reply).unwrap_or_default();
            match sys::write_all(out, &bytes) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        },
    )?;
    drop(res_w);
    let bytes = sys::read_to_end(&res_r);
    let status = sys::wait(pid);
    let failed = |message: String| Error::InNamespace {
        task: task.to_owned(),
        message,
    };
    let bytes = bytes.map_err(|e| failed(format!("reading its result: {e}")))?;
    match serde_json::from_slice::<Reply<T>>(&bytes) {
        Ok(Reply::Ok(v)) => Ok(v),
        Ok(Reply::Err(message)) => Err(failed(message)),
        Err(_) => Err(failed(format!(
            "the helper process ended without an answer (wait status {:?})",
            status.ok()
        ))),
    }
}

/// An error and its causes on one line, as `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_runs_as_root_of_the_namespace() {
        let (mapping, _) = super::super::idmap::detect();
        // SAFETY: getuid cannot fail.
        let uid = in_namespace(&mapping, "asking for the uid", || {
            Ok(unsafe { libc::getuid() })
        })
        .unwrap();
        assert_eq!(uid, 0);
        let err = in_namespace::<(), _>(&mapping, "failing", || {
            Err(Error::Command("on purpose".into()))
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failing failed inside the user namespace: invalid command: on purpose"
        );
    }
}
