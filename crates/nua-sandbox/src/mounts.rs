//! The mounts of a run, made by the namespace's pid 1 before it forks the command: the
//! overlay root, `/proc`, `/dev`, `/tmp`, `/etc/resolv.conf` and binds, then
//! `pivot_root`.
//!
//! Everything here runs after `fork` in a single-threaded child. Targets are reached with
//! [`walk`] (never following a symlink, so a link planted by an earlier step cannot send a
//! mount outside the root) and mounted onto through `/proc/self/fd/N`; binds use the new
//! mount API (`open_tree` + `mount_setattr` + `move_mount`) so they are read-only
//! recursively and no locked flag has to be guessed for a remount.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::sys::{cvt, fd_path, mount};
use super::unpack::{open_dir, walk};

/// What pid 1 mounts, prepared as C strings by the parent before forking.
pub(crate) struct MountPlan {
    /// Overlay options with lower/upper/work paths relative to the root's directory, which
    /// is the current directory when they are used (keeps them under the page-size limit).
    pub overlay: CString,
    /// Host path and path inside the root (relative, no leading `/`) of each bind, whether it is a folder, whether it is writable.
    pub binds: Vec<(CString, Vec<u8>, bool, bool)>,
    /// Group of the new devpts' terminals when the `tty` group (5) is mapped.
    pub tty_gid: Option<u32>,
}

/// Numbered setup steps, reported by the child as an index (nothing to format after fork).
pub(crate) const STEPS: &[&str] = &[
    "mounting the overlay root (`merged`)",
    "mounting /proc",
    "mounting the /dev tmpfs",
    "binding a host device into /dev",
    "mounting /dev/pts",
    "mounting /dev/shm or /tmp",
    "binding a host path read-only into the root (is the target a symlink in the image?)",
    "pivoting into the root (`pivot_root`)",
    "setting the hostname",
    "bringing up `lo` in the new network namespace",
    "forking the command",
    "switching to the step's uid:gid",
    "changing to the working directory (does it exist in the root?)",
    "executing the command (is it installed, in PATH, executable?)",
];

pub(crate) const STEP_PIVOT: u32 = 7;
pub(crate) const STEP_HOSTNAME: u32 = 8;
pub(crate) const STEP_LOOPBACK: u32 = 9;

/// Mount everything and pivot into the root; `Err((step, errno))` on the first failure.
pub(crate) fn setup(plan: &MountPlan) -> Result<(), (u32, io::Error)> {
    let at = |step: u32| move |e: io::Error| (step, e);
    let mut buf = [0u8; 32];
    let merged = open_dir(libc::AT_FDCWD, c"merged").map_err(at(0))?;
    let flags = libc::MS_NOSUID;
    mount(
        Some(c"overlay"),
        fd_path(merged.as_raw_fd(), &mut buf),
        Some(c"overlay"),
        flags,
        Some(&plan.overlay),
    )
    .map_err(at(0))?;
    drop(merged);
    let root = open_dir(libc::AT_FDCWD, c"merged").map_err(at(0))?;
    let rootfd = &root;
    let dir = |rel: &[u8], step: u32| target(rootfd, rel, true).map_err(at(step));
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;

    let proc = dir(b"proc", 1)?;
    mount(
        Some(c"proc"),
        fd_path(proc.as_raw_fd(), &mut buf),
        Some(c"proc"),
        nosuid_nodev | libc::MS_NOEXEC,
        None,
    )
    .map_err(at(1))?;
    let dev = dir(b"dev", 2)?;
    mount(
        Some(c"tmpfs"),
        fd_path(dev.as_raw_fd(), &mut buf),
        Some(c"tmpfs"),
        libc::MS_NOSUID,
        Some(c"mode=755,size=65536k"),
    )
    .map_err(at(2))?;
    // The descriptor above is the directory under the tmpfs: reopen it to reach the tmpfs.
    let dev = dir(b"dev", 2)?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let mut host = *b"/dev/\0\0\0\0\0\0\0\0";
        host[5..5 + name.len()].copy_from_slice(name.as_bytes());
        let host = CStr::from_bytes_until_nul(&host).expect("NUL-terminated");
        let rel = [b"dev/", name.as_bytes()].concat();
        let t = target(rootfd, &rel, false).map_err(at(3))?;
        bind(host, &t, false).map_err(at(3))?;
    }
    let pts = dir(b"dev/pts", 4)?;
    let mut opts = *b"newinstance,ptmxmode=0666,mode=0620,gid=5\0";
    let opts = if plan.tty_gid.is_some() {
        &opts[..]
    } else {
        opts[35] = 0;
        &opts[..]
    };
    let opts = CStr::from_bytes_until_nul(opts).expect("NUL-terminated");
    mount(
        Some(c"devpts"),
        fd_path(pts.as_raw_fd(), &mut buf),
        Some(c"devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(opts),
    )
    .map_err(at(4))?;
    for (link, to) in [
        (c"ptmx", c"pts/ptmx"),
        (c"fd", c"/proc/self/fd"),
        (c"stdin", c"/proc/self/fd/0"),
        (c"stdout", c"/proc/self/fd/1"),
        (c"stderr", c"/proc/self/fd/2"),
    ] {
        // SAFETY: valid descriptor and NUL-terminated strings.
        cvt(unsafe { libc::symlinkat(to.as_ptr(), dev.as_raw_fd(), link.as_ptr()) })
            .map_err(at(2))?;
    }
    for (rel, opts) in [(&b"dev/shm"[..], c"mode=1777"), (b"tmp", c"mode=1777")] {
        let t = dir(rel, 5)?;
        mount(
            Some(c"tmpfs"),
            fd_path(t.as_raw_fd(), &mut buf),
            Some(c"tmpfs"),
            nosuid_nodev,
            Some(opts),
        )
        .map_err(at(5))?;
    }
    for (source, rel, is_dir, writable) in &plan.binds {
        let t = target(rootfd, rel, *is_dir).map_err(at(6))?;
        bind(source, &t, !writable).map_err(at(6))?;
    }
    pivot(&root).map_err(at(STEP_PIVOT))
}

/// Open `rel` under `root` as an `O_PATH` descriptor, creating it (and its parents) as a
/// directory or an empty file when missing; never follows a symlink.
fn target(root: &OwnedFd, rel: &[u8], is_dir: bool) -> io::Result<OwnedFd> {
    let comps: Vec<&[u8]> = rel
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let Some((name, parents)) = comps.split_last() else {
        return open_dir(root.as_raw_fd(), c".");
    };
    let parent = walk(root, parents, true)?;
    let name = CString::new(*name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let d = parent.as_raw_fd();
    // SAFETY: valid descriptor and NUL-terminated name; failures are handled below.
    unsafe {
        if is_dir {
            libc::mkdirat(d, name.as_ptr(), 0o755);
        } else {
            let fd = libc::openat(
                d,
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
        }
        let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = cvt(libc::openat(d, name.as_ptr(), flags))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Bind `source` (recursively) onto the open `target`, read-only when asked.
fn bind(source: &CStr, target: &OwnedFd, read_only: bool) -> io::Result<()> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    const MOUNT_ATTR_NOSUID: u64 = 2;
    const MOUNT_ATTR_NODEV: u64 = 4;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: raw system calls with valid pointers; the tree descriptor is owned below.
    unsafe {
        let tree = libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source.as_ptr(), flags);
        let tree = OwnedFd::from_raw_fd(cvt(tree as libc::c_int)?);
        if read_only {
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            let at = libc::AT_EMPTY_PATH | libc::AT_RECURSIVE;
            let size = std::mem::size_of::<MountAttr>();
            let r = libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                at,
                &attr,
                size,
            );
            cvt(r as libc::c_int)?;
        }
        let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
        let r = libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        );
        cvt(r as libc::c_int).map(drop)
    }
}

/// `pivot_root(".", ".")` inside `root`, then detach the old root stacked under it.
fn pivot(root: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain system calls on a valid descriptor and constant strings.
    unsafe {
        cvt(libc::fchdir(root.as_raw_fd()))?;
        cvt(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as libc::c_int)?;
        cvt(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
        cvt(libc::chdir(c"/".as_ptr())).map(drop)
    }
}

/// Bring the loopback interface of a new network namespace up.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: a zeroed ifreq is valid; the socket is closed by OwnedFd.
    unsafe {
        let sock = OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))?);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        cvt(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req)).map(drop)
    }
}
