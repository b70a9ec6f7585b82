//! Checking, before anything runs, that the kernel allows what the sandbox needs; every
//! failure says what is missing and the command that enables it.

use std::path::Path;

use super::error::{Error, Result};
use super::idmap::Mapping;
use super::sys::{self, cstring};
use super::userns::in_namespace;

/// Fail with [`Error::Unsupported`] when user namespaces or unprivileged overlayfs with
/// `userxattr` (and whiteout creation) are not available; `scratch` is a directory on the
/// file system the layers will live on.
pub(crate) fn check(mapping: &Mapping, scratch: &Path) -> Result<()> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let unsupported = |what: &str, fix: &str| {
        Err(Error::Unsupported {
            what: what.into(),
            fix: fix.into(),
        })
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return unsupported(
            "user namespaces are disabled (`user.max_user_namespaces` is 0)",
            "`sysctl -w user.max_user_namespaces=15000` (and in /etc/sysctl.d/ to keep it)",
        );
    }
    let unprivileged = *mapping != Mapping::Identity;
    if unprivileged && read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return unsupported(
            "unprivileged user namespaces are disabled (`kernel.unprivileged_userns_clone` is 0)",
            "`sysctl -w kernel.unprivileged_userns_clone=1`",
        );
    }
    if unprivileged
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        return unsupported(
            "AppArmor forbids unprivileged user namespaces \
             (`kernel.apparmor_restrict_unprivileged_userns` is 1)",
            "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor profile \
             that allows `userns` for this program",
        );
    }
    let dir = tempfile::Builder::new()
        .prefix(".probe-")
        .tempdir_in(scratch)
        .map_err(|source| Error::Io {
            path: scratch.to_owned(),
            source,
        })?;
    let base = dir.path().to_owned();
    let outcome = in_namespace(mapping, "probing overlayfs", move || {
        Ok(try_overlay(&base).err())
    });
    let removed = in_namespace(mapping, "removing the probe directory", {
        let base = dir.path().to_owned();
        move || {
            let _ = std::fs::remove_dir_all(&base);
            Ok(())
        }
    });
    // Creating the namespace itself failed: a kernel setting or a container's seccomp
    // policy forbids it, which no file system choice fixes.
    if let Err(Error::InNamespace { message, .. } | Error::Setup { step: message, .. }) = &outcome {
        return unsupported(
            &format!("cannot create a user namespace: {message}"),
            "enable unprivileged user namespaces (`sysctl -w user.max_user_namespaces=15000`; \
             on Ubuntu also `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`); in a \
             container, run it with a seccomp profile that allows `unshare` and `mount` \
             (e.g. `--security-opt seccomp=unconfined`)",
        );
    }
    let outcome = outcome?;
    drop(removed);
    match outcome {
        None => Ok(()),
        Some(what) => unsupported(
            &what,
            "the sandbox needs Linux 5.12 or newer (overlayfs with `userxattr` in a user \
             namespace, `mount_setattr`, `openat2`) and its cache on a file system with user \
             xattrs (ext4, xfs, btrfs; tmpfs from 6.6): point `NUA_CACHE_DIR` at one",
        ),
    }
}

/// Create a whiteout, set `user.overlay.opaque` and mount an overlay, as unpacking and
/// running will; the first failure as text.
fn try_overlay(base: &Path) -> std::result::Result<(), String> {
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir(base.join(d)).map_err(|e| format!("creating `{d}`: {e}"))?;
    }
    let path = |rel: &str| cstring(base.join(rel).into_os_string().into_encoded_bytes());
    let whiteout = path("l/gone").ok_or("NUL in path")?;
    // SAFETY: NUL-terminated path; 0:0 is overlay's whiteout.
    if unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) } != 0 {
        return Err(format!(
            "creating an overlay whiteout (a 0:0 character device) is not allowed: {}",
            std::io::Error::last_os_error()
        ));
    }
    xattr::set(base.join("u"), "user.overlay.opaque", b"y")
        .map_err(|e| format!("setting the `user.overlay.opaque` xattr: {e}"))?;
    let target = path("m").ok_or("NUL in path")?;
    let opts = format!(
        "lowerdir={0}/l,upperdir={0}/u,workdir={0}/w,{1}",
        base.display(),
        OVERLAY_OPTIONS
    );
    let opts = cstring(opts).ok_or("NUL in path")?;
    sys::mount(Some(c"overlay"), &target, Some(c"overlay"), 0, Some(&opts))
        .map_err(|e| format!("mounting overlayfs with `userxattr` in a user namespace: {e}"))?;
    // SAFETY: NUL-terminated path of the mount just made.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    Ok(())
}

/// Options every overlay mount uses: `userxattr` (overlay's markers are `user.overlay.*`,
/// the only ones settable in a user namespace), and nothing that would put anything but
/// plain files into the upper directory (no index, no metacopy, redirects neither made nor followed).
pub(crate) const OVERLAY_OPTIONS: &str = "userxattr,index=off,metacopy=off,redirect_dir=nofollow";
