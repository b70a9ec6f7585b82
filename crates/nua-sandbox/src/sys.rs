//! Thin wrappers over the system calls the sandbox makes through `libc`.
//!
//! Several of them run in a child between `fork` and `exec`, so they allocate nothing and
//! take no lock: they work on raw file descriptors and C strings prepared by the parent.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `Ok(r)` unless `r == -1`, then the `errno` of the call.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `errno` of the last failed call, as a plain number (for the child-to-parent reports).
pub(crate) fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A C string, or `None` when `s` contains a NUL byte.
pub(crate) fn cstring(s: impl Into<Vec<u8>>) -> Option<CString> {
    CString::new(s).ok()
}

/// A pipe whose two ends close on `exec`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Write all of `buf`, retrying on `EINTR`; safe after `fork`.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid slice for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Read into `buf` until it is full or the writer closed; the number of bytes read.
pub(crate) fn read_full(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        match r {
            0 => break,
            r if r > 0 => n += r as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(n)
}

/// One `read`, retrying on `EINTR`.
pub(crate) fn read_full_once(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe `buf`.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Read until the writer closes.
pub(crate) fn read_to_end(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = read_full(fd.as_raw_fd(), &mut buf)?;
        out.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return Ok(out);
        }
    }
}

/// `mount(2)`; `None` arguments are passed as NULL.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    cvt(unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    })
    .map(drop)
}

/// Make every mount of this (new) mount namespace private, so nothing propagates back.
pub(crate) fn make_mounts_private() -> io::Result<()> {
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
}

/// `waitpid` retrying on `EINTR`; the raw wait status.
pub(crate) fn wait(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A pidfd of the calling process (close-on-exec), or -1 when the kernel has none (< 5.3).
pub(crate) fn pidfd_self() -> RawFd {
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) as RawFd }
}

/// Whether the process of `pidfd` has exited (a pidfd polls readable then); safe after
/// `fork`. An invalid descriptor reads as alive.
pub(crate) fn pidfd_exited(pidfd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 && pfd.revents & libc::POLLIN != 0 }
}

/// Leave the process now, without unwinding or running exit handlers (a forked child must
/// not flush the parent's buffers twice).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Path of an open descriptor that `mount` and friends can follow (`/proc/self/fd/N`).
pub(crate) fn fd_path(fd: RawFd, buf: &mut [u8; 32]) -> &CStr {
    use std::io::Write;
    buf.fill(0);
    let mut cursor = &mut buf[..31];
    let _ = write!(cursor, "/proc/self/fd/{fd}");
    CStr::from_bytes_until_nul(buf).unwrap_or(c"/proc/self/fd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_carry_bytes_and_fd_paths_are_formatted() {
        let (r, w) = pipe().unwrap();
        write_all(w.as_raw_fd(), b"hello").unwrap();
        drop(w);
        assert_eq!(read_to_end(&r).unwrap(), b"hello");
        let mut buf = [0; 32];
        assert_eq!(fd_path(17, &mut buf).to_str().unwrap(), "/proc/self/fd/17");
        assert!(cstring("a\0b").is_none());
    }

    #[test]
    fn pidfd_tells_when_its_process_exits() {
        // SAFETY: the child only sleeps and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            std::thread::sleep(std::time::Duration::from_millis(300));
            exit_now(0);
        }
        // SAFETY: pidfd_open takes no pointers; `pid` is our child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) as RawFd };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        assert!(!pidfd_exited(fd));
        wait(pid).unwrap();
        assert!(pidfd_exited(fd));
        let me = pidfd_self();
        assert!(me >= 0 && !pidfd_exited(me) && !pidfd_exited(-1));
        // SAFETY: both descriptors are ours.
        unsafe { (libc::close(fd), libc::close(me)) };
    }
}
