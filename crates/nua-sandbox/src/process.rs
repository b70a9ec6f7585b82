//! Running one command: three processes, output streamed back, status passed through.
//!
//! ```text
//! caller thread ── fork ─▶ C1: unshare(user, mount, pid, ipc, uts[, net]); waits for the
//!      │                       caller to write its id maps, then forks
//!      │                   C2: pid 1 of the new pid namespace; mounts, pivot_root, forks
//!      │                   C3: setgroups/setresgid/setresuid, chdir, execve the command
//!      └ reads stdout/stderr pipes line by line, and a report pipe: setup failures as
//!        (step, errno) and C3's wait status, written by C2 when C3 ends
//! ```
//!
//! Each child has `PR_SET_PDEATHSIG = SIGKILL` towards its parent: if the caller's thread
//! dies (Ctrl-C, crash), C1 dies, then C2, and the death of a pid namespace's pid 1 kills
//! every process in it. C1 and C2 check that their parent is still alive once the signal
//! is armed (C1 by `getppid`, C2 by a pidfd of C1), so a parent killed just after `fork`
//! leaves nothing behind (`tests/sandbox_faults.rs` kills the caller mid-command). A timeout kills C1 the same way. Everything the children need is
//! prepared as C strings before the first fork; after it they only make system calls
//! (plus allocations, which glibc's fork keeps safe).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::idmap::Mapping;
use super::mounts::{self, MountPlan, STEPS};
use super::sys::{self, cvt};
use super::{userns, Status, Stream};

/// Everything a run needs, prepared before forking.
pub(crate) struct Plan {
    /// The root's directory (holds `merged`, `upper`, `work`, `scaffold`, `l/N`).
    pub root_dir: CString,
    pub mounts: MountPlan,
    pub hostname: CString,
    pub net_none: bool,
    pub user: (u32, u32),
    pub cwd: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// Paths to try with `execve`, in order (argv[0] looked up in PATH).
    pub exec: Vec<CString>,
}

const REPORT_SETUP: u8 = 0;
const REPORT_STATUS: u8 = 1;

/// Run `plan`, calling `on_line` for each line of output; returns how the command ended.
pub(crate) fn run(
    plan: &Plan,
    mapping: &Mapping,
    timeout: Option<Duration>,
    on_line: &mut dyn FnMut(Stream, &str),
) -> Result<Status> {
    let pipe = || {
        sys::pipe().map_err(|source| Error::Setup {
            step: "creating a pipe".into(),
            source,
        })
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let fds = (out_w.as_raw_fd(), err_w.as_raw_fd(), rep_w.as_raw_fd());
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if plan.net_none {
        flags |= libc::CLONE_NEWNET;
    }
    // Arrays of pointers for execve, built before forking.
    let ptrs = |v: &[CString]| {
        let mut p: Vec<*const libc::c_char> = v.iter().map(|s| s.as_ptr()).collect();
        p.push(std::ptr::null());
        p
    };
    let (argv, envp) = (ptrs(&plan.argv), ptrs(&plan.env));
    let c1 = userns::spawn(mapping, flags, || {
        let c1_fd = sys::pidfd_self();
        // SAFETY: fork in a single-threaded child.
        match unsafe { libc::fork() } {
            0 => pid1(plan, fds, c1_fd, &argv, &envp),
            -1 => 1,
            c2 => sys::wait(c2).map_or(1, |_| 0),
        }
    })?;
    drop((out_w, err_w, rep_w));
    let deadline = timeout.map(|t| Instant::now() + t);
    let timed_out = pump(&out_r, &err_r, deadline, c1, on_line);
    let report = sys::read_to_end(&rep_r).unwrap_or_default();
    let _ = sys::wait(c1);
    if timed_out {
        return Ok(Status::TimedOut);
    }
    decode(&report)
}

/// What C2 (pid 1) does: mount, pivot, fork the command, wait for it, report its status.
fn pid1(
    plan: &Plan,
    (out, err, rep): (i32, i32, i32),
    c1_fd: i32,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> i32 {
    let report = |step: u32, e: std::io::Error| {
        let mut msg = [REPORT_SETUP, 0, 0, 0, 0, 0, 0, 0, 0];
        msg[1..5].copy_from_slice(&step.to_ne_bytes());
        msg[5..].copy_from_slice(&e.raw_os_error().unwrap_or(0).to_ne_bytes());
        let _ = sys::write_all(rep, &msg);
        1
    };
    // SAFETY: plain system calls in a single-threaded child.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // C1 may have died before the death signal was armed (its caller killed right
        // then): nothing would ever kill this namespace. `getppid` cannot tell from inside
        // a new pid namespace (it is 0 either way), C1's pidfd can.
        if sys::pidfd_exited(c1_fd) {
            return 1;
        }
        libc::close(c1_fd);
        if let Err(e) = cvt(libc::chdir(plan.root_dir.as_ptr())) {
            return report(0, e);
        }
    }
    if let Err(e) = sys::make_mounts_private() {
        return report(0, e);
    }
    if let Err((step, e)) = mounts::setup(&plan.mounts) {
        return report(step, e);
    }
    let name = plan.hostname.as_bytes();
    // SAFETY: pointer and length describe `name`.
    if let Err(e) = cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }) {
        return report(mounts::STEP_HOSTNAME, e);
    }
    if plan.net_none {
        if let Err(e) = mounts::loopback_up() {
            return report(mounts::STEP_LOOPBACK, e);
        }
    }
    // SAFETY: fork in a single-threaded process.
    let c3 = unsafe { libc::fork() };
    if c3 == 0 {
        let (step, e) = command(plan, (out, err), argv, envp);
        return report(step, e);
    }
    if c3 < 0 {
        return report(10, std::io::Error::last_os_error());
    }
    // SAFETY: closing our copies so only the command holds the output pipes.
    unsafe {
        libc::close(out);
        libc::close(err);
    }
    loop {
        let mut status = 0;
        // SAFETY: valid out pointer. As pid 1 we also reap orphans until the command ends.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == c3 {
            let mut msg = [REPORT_STATUS, 0, 0, 0, 0, 0, 0, 0, 0];
            msg[5..].copy_from_slice(&status.to_ne_bytes());
            let _ = sys::write_all(rep, &msg);
            return 0;
        }
        if pid < 0 && sys::errno() != libc::EINTR {
            return 1;
        }
    }
}

/// What C3 does; returns only on failure, with the step that failed.
fn command(
    plan: &Plan,
    (out, err): (i32, i32),
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> (u32, std::io::Error) {
    let last = std::io::Error::last_os_error;
    // SAFETY: plain system calls in a single-threaded child, on prepared C strings.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // A session of its own: no controlling terminal, so nothing inside can reach the
        // user's terminal (TIOCSTI) or get its signals.
        libc::setsid();
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let (uid, gid) = plan.user;
        // Fails with EPERM under a single mapping (setgroups denied): nothing to drop then.
        libc::setgroups(0, std::ptr::null());
        if libc::setresgid(gid, gid, gid) != 0 || libc::setresuid(uid, uid, uid) != 0 {
            return (11, last());
        }
        if libc::chdir(plan.cwd.as_ptr()) != 0 {
            return (12, last());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null < 0 || libc::dup2(null, 0) < 0 || libc::dup2(out, 1) < 0 || libc::dup2(err, 2) < 0 {
            return (13, last());
        }
        let mut e = std::io::Error::from_raw_os_error(libc::ENOENT);
        for path in &plan.exec {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let this = last();
            // Keep the most telling failure: EACCES over ENOENT, as execvp does.
            if this.raw_os_error() != Some(libc::ENOENT) {
                e = this;
            }
        }
        (13, e)
    }
}

/// The longest line passed on whole; longer ones arrive in pieces of this size.
const MAX_LINE: usize = 64 * 1024;

/// Read both output pipes until they close, line by line; kill `c1` at the deadline.
/// Returns whether the deadline passed.
fn pump(
    out: &OwnedFd,
    err: &OwnedFd,
    deadline: Option<Instant>,
    c1: libc::pid_t,
    on_line: &mut dyn FnMut(Stream, &str),
) -> bool {
    let mut bufs = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let mut timed_out = false;
    let mut chunk = [0u8; 16384];
    while open[0] || open[1] {
        let mut pfds: Vec<libc::pollfd> = [out, err]
            .iter()
            .zip(open)
            .map(|(fd, o)| libc::pollfd {
                fd: if o { fd.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wait_ms = match deadline {
            Some(d) if !timed_out => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(60_000) as i32,
            _ => -1,
        };
        // SAFETY: `pfds` holds two valid pollfd structs.
        // An error (EINTR) leaves every `revents` at 0: the loop simply polls again.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, wait_ms) };
        // Checked whatever poll said: a command that never stops printing must time out too.
        if deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
            timed_out = true;
            // SAFETY: c1 is our child; its death takes the whole namespace down.
            unsafe { libc::kill(c1, libc::SIGKILL) };
            continue;
        }
        for (i, p) in pfds.iter().enumerate() {
            if !open[i] || p.revents == 0 {
                continue;
            }
            let got = sys::read_full_once(p.fd, &mut chunk);
            let stream = if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            match got {
                Ok(0) | Err(_) => {
                    open[i] = false;
                    if !bufs[i].is_empty() {
                        on_line(stream, &String::from_utf8_lossy(&bufs[i]));
                        bufs[i].clear();
                    }
                }
                Ok(n) => {
                    bufs[i].extend_from_slice(&chunk[..n]);
                    while let Some(pos) = bufs[i].iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = bufs[i].drain(..=pos).collect();
                        on_line(stream, &String::from_utf8_lossy(&line[..pos]));
                    }
                    // Output without newlines is passed on in pieces: memory stays bounded.
                    while bufs[i].len() >= MAX_LINE {
                        let piece: Vec<u8> = bufs[i].drain(..MAX_LINE).collect();
                        on_line(stream, &String::from_utf8_lossy(&piece));
                    }
                }
            }
        }
    }
    timed_out
}

/// Turn the report pipe's messages into a status or a setup error.
fn decode(report: &[u8]) -> Result<Status> {
    if let Some(msg) = report.chunks_exact(9).next() {
        let value = i32::from_ne_bytes(msg[5..9].try_into().expect("4 bytes"));
        if msg[0] == REPORT_STATUS {
            return Ok(if libc::WIFSIGNALED(value) {
                Status::Signaled(libc::WTERMSIG(value))
            } else {
                Status::Exited(libc::WEXITSTATUS(value))
            });
        }
        let step = u32::from_ne_bytes(msg[1..5].try_into().expect("4 bytes")) as usize;
        return Err(Error::Setup {
            step: STEPS
                .get(step)
                .unwrap_or(&"setting up the sandbox")
                .to_string(),
            source: std::io::Error::from_raw_os_error(value),
        });
    }
    Err(Error::Setup {
        step: "running the command (the sandbox ended without a status: killed?)".into(),
        source: std::io::Error::from_raw_os_error(libc::ECHILD),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_decode_to_status_or_step() {
        let mut msg = vec![REPORT_STATUS, 0, 0, 0, 0];
        msg.extend_from_slice(&(3i32 << 8).to_ne_bytes());
        assert!(matches!(decode(&msg), Ok(Status::Exited(3))));
        let mut msg = vec![REPORT_SETUP];
        msg.extend_from_slice(&12u32.to_ne_bytes());
        msg.extend_from_slice(&libc::ENOENT.to_ne_bytes());
        let e = decode(&msg).unwrap_err().to_string();
        assert!(e.contains("working directory"), "{e}");
        assert!(decode(&[]).is_err());
    }
}
