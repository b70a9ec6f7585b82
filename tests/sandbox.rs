//! The sandbox on the real kernel: runs over a Debian root, commits checked with umoci,
//! hostile layers. Run as root, and again as the unprivileged `nua-rootless` user
//! (`as_unprivileged_user` re-runs this binary under `setpriv`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::time::Duration;

use common::sandbox::{env, listing, root, set_readable, sh, stdout};
use nua_oci::{self as oci, Descriptor, Layer, LayerOptions};
use nua_sandbox::{Bind, Command, Network, Root, Status, Stream};

#[test]
fn exit_codes_and_signals_pass_through() {
    let mut root = root();
    assert_eq!(sh(&mut root, Command::shell("exit 0")).0, Status::Exited(0));
    assert_eq!(
        sh(&mut root, Command::shell("exit 42")).0,
        Status::Exited(42)
    );
    assert_eq!(
        sh(&mut root, Command::shell("kill -TERM $$")).0,
        Status::Signaled(15)
    );
    let err = root
        .run(&Command::new(["no-such-command"]), &mut |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("executing the command"), "{err}");
}

#[test]
fn timeout_kills_the_whole_namespace() {
    let mut root = root();
    // Unique per test process: the root and unprivileged runs go on at the same time.
    let marker = format!("sleep {}", 100_000 + std::process::id());
    let mut cmd = Command::shell(&format!("{marker}1 & {marker}2; echo never"));
    cmd.timeout = Some(Duration::from_millis(1500));
    let (status, lines) = sh(&mut root, cmd);
    assert_eq!(status, Status::TimedOut);
    assert!(lines.is_empty(), "{lines:?}");
    std::thread::sleep(Duration::from_millis(200));
    let left = common::sandbox::processes_with(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn network_none_has_only_loopback() {
    let mut root = root();
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    let mut cmd = Command::shell(script);
    cmd.network = Network::None;
    let (status, lines) = sh(&mut root, cmd);
    assert!(status.success());
    assert_eq!(stdout(&lines), ["lo"]);
    let (_, host) = sh(&mut root, Command::shell(script));
    assert!(
        stdout(&host).len() > 1,
        "the host network has more than lo: {host:?}"
    );
}

#[test]
fn read_only_bind_is_visible_not_writable_nor_committed() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("ca.pem"), "CERT\n").unwrap();
    set_readable(host.path());
    let mut root = root();
    let mut cmd = Command::shell("cat /opt/host/ca.pem; echo x > /opt/host/ca.pem || echo refused");
    cmd.mounts.push(Bind::read_only(host.path(), "/opt/host"));
    let (status, lines) = sh(&mut root, cmd);
    assert!(status.success(), "{lines:?}");
    assert_eq!(stdout(&lines), ["CERT", "refused"]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("ca.pem")).unwrap(),
        "CERT\n"
    );
    let listing = listing(&root.commit(&LayerOptions::default()).unwrap());
    assert!(listing.iter().all(|e| !e.starts_with("opt")), "{listing:?}");
}

#[test]
fn proc_dev_env_cwd_and_user_are_set() {
    let mut root = root();
    let mut cmd = Command::new(["sh", "-c", "echo $FOO ${HOME-nohome}; pwd; id -u; id -g; \
        head -c 8 /dev/urandom | wc -c; echo gone > /dev/null; test -r /proc/self/status && echo proc; hostname"]);
    cmd.env = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("FOO".into(), "bar".into()),
    ];
    cmd.cwd = "/usr/share".into();
    let id = if env().sandbox.mapping().maps(1000) {
        1000
    } else {
        0
    };
    cmd.user = (id, id);
    cmd.hostname = "step-3".into();
    let (status, lines) = sh(&mut root, cmd);
    assert!(status.success(), "{lines:?}");
    let (id, id8) = (id.to_string(), "8".to_string());
    assert_eq!(
        stdout(&lines),
        ["bar nohome", "/usr/share", &id, &id, &id8, "proc", "step-3"]
    );
}

#[test]
fn output_lines_arrive_in_order() {
    let mut root = root();
    let (status, lines) = sh(
        &mut root,
        Command::shell("seq 1 500; echo oops >&2; printf 'no newline'"),
    );
    assert!(status.success());
    let out = stdout(&lines);
    let expected: Vec<String> = (1..=500).map(|i| i.to_string()).collect();
    assert_eq!(
        out[..500],
        expected.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_eq!(out[500], "no newline");
    assert!(lines.contains(&(Stream::Stderr, "oops".into())));
}

#[test]
fn deleted_file_and_replaced_directory_survive_commit_and_umoci() {
    let mut root = root();
    let script = "rm /etc/debian_version && rm -rf /usr/share/doc && mkdir /usr/share/doc \
        && touch /usr/share/doc/new-file && echo hi > /etc/added";
    let (status, lines) = sh(&mut root, Command::shell(script));
    assert!(status.success(), "{lines:?}");
    // A second run sees the first one's changes.
    assert!(
        sh(&mut root, Command::shell("test ! -e /etc/debian_version"))
            .0
            .success()
    );
    assert_eq!(root.read_file("/etc/debian_version").unwrap(), None);
    assert_eq!(root.read_file("/etc/added").unwrap().unwrap(), b"hi\n");
    assert!(root.read_file("/etc/os-release").unwrap().is_some());
    // One look at the merged view: the replaced folder lists only what the run put there, a
    // folder is no file, a file no folder, and a link resolves inside the root.
    let (listed, folder, file, link) = root
        .inspect("looking at the root", |merged| {
            Ok((
                merged.list("usr/share/doc")?,
                merged.read("usr/share")?,
                merged.list("etc/added")?,
                merged.read("etc/os-release")?.is_some(),
            ))
        })
        .unwrap();
    assert_eq!(listed, Some(vec!["new-file".to_owned()]));
    assert_eq!((folder, file, link), (None, None, true));
    let layer = root.commit(&LayerOptions::default()).unwrap();
    insta::assert_snapshot!(listing(&layer).join("\n"));

    let e = env();
    let spec = oci::ImageSpec::new(
        vec![e.base.clone(), layer],
        oci::ContainerConfig::default(),
        0,
    );
    let image = oci::write_image(&e.store, &spec).unwrap();
    let work = tempfile::tempdir_in(&e.dir).unwrap();
    let layout = work.path().join("layout");
    let name = oci::ImageName::parse("sandbox-test:1").unwrap();
    oci::write_layout_dir(&e.store, &image, &[name], &layout).unwrap();
    let bundle = work.path().join("bundle");
    let image_arg = format!("{}:1", layout.display());
    let umoci = ["unpack", "--rootless", "--image", &image_arg];
    common::run_ok(Proc::new("umoci").args(umoci).arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("etc/os-release").exists());
    assert!(!rootfs.join("etc/debian_version").exists());
    let doc: Vec<_> = std::fs::read_dir(rootfs.join("usr/share/doc"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(doc, ["new-file"]);
}

/// A committed upper directory is kept as the layer's folder in the cache, the same as a
/// fresh unpack of the layer in every way a root stacking it can see: types, modes, owners,
/// mtimes as a later layer records them, opaque markers, whiteouts, hard links and contents,
/// with what was left out gone. A FIFO, or a name unpacking reads as a whiteout, keeps it
/// from being kept.
#[test]
fn committed_upper_is_kept_as_the_unpacked_layer() {
    let e = env();
    let opts = LayerOptions {
        source_date_epoch: 1_000_000_000,
        ..LayerOptions::default()
    };
    // A token makes the layer new to the cache on every run.
    let token = format!("{:?}", std::time::SystemTime::now());
    let script = format!(
        "set -e; rm /etc/debian_version /etc/issue; rm -rf /usr/share/doc; mkdir /usr/share/doc; \
         echo x > /usr/share/doc/new; mkdir -p /opt/t/sub /var/cache/apt/archives; \
         echo '{token}' > /opt/t/token; echo a > /opt/t/a; ln /opt/t/a /opt/t/b; \
         ln -s a /opt/t/link; echo s > /opt/t/sub/f; echo old > /opt/t/old; \
         mkdir /opt/t/empty; touch -d @946684800 /opt/t/old /opt/t/sub /opt/t/empty; touch -h -d @946684800 /opt/t/link; echo cached > /var/cache/apt/archives/p; \
         chown 1000:1000 /opt/t/a; chmod 4755 /opt/t/a"
    );
    let mut root = root();
    let (status, lines) = sh(&mut root, Command::shell(&script));
    assert!(status.success(), "{lines:?}");
    let layer = root.commit_without(&opts, &["/var/cache/apt"]).unwrap();
    let kept = e.dir.join("sandbox/layers").join(layer.diff_id.hex());
    assert!(kept.is_dir(), "the upper directory was not kept");
    assert!(!kept.join("var/cache/apt").exists(), "left out, yet kept");

    let fresh_dir = tempfile::tempdir_in(&e.dir).unwrap();
    let fresh = nua_sandbox::Sandbox::new(fresh_dir.path(), &e.store).unwrap();
    drop(fresh.root(std::slice::from_ref(&layer)).unwrap());
    let unpacked = fresh_dir.path().join("layers").join(layer.diff_id.hex());
    let epoch = opts.source_date_epoch as i64;
    let (kept_entries, unpacked_entries) = (entries(&kept, epoch), entries(&unpacked, epoch));
    fresh.forget_unpacked(&|_| false).unwrap();
    assert_eq!(kept_entries, unpacked_entries);
    let names: Vec<&str> = kept_entries.iter().map(|e| e.path.as_str()).collect();
    for name in [
        "etc/debian_version",
        "usr/share/doc",
        "opt/t/b",
        "opt/t/old",
        "opt/t/empty",
        "etc/issue",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    // Not kept, yet the layer stacks as made.
    let mut other = common::sandbox::root();
    let script = format!("set -e; mkfifo /opt/fifo; echo '{token}' > /opt/token");
    let (status, lines) = sh(&mut other, Command::shell(&script));
    assert!(status.success(), "{lines:?}");
    let layer = other.commit(&opts).unwrap();
    let hex = layer.diff_id.hex();
    assert!(!e.dir.join("sandbox/layers").join(hex).exists(), "kept");
    let mut next = e.sandbox.root(&[e.base.clone(), layer]).unwrap();
    let (status, lines) = sh(
        &mut next,
        Command::shell("test -p /opt/fifo && cat /opt/token"),
    );
    assert!(status.success(), "{lines:?}");
    assert_eq!(stdout(&lines), [token.as_str()]);

    // A name a layer reads as a whiteout: written as it is, the layer would delete `x` from
    // those below. The commit refuses it, naming it.
    let mut other = common::sandbox::root();
    let (status, lines) = sh(&mut other, Command::shell("touch /opt/.wh.x"));
    assert!(status.success(), "{lines:?}");
    let err = other.commit(&opts).unwrap_err();
    let text = format!("{err:#}");
    let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(
        chain.contains("opt/.wh.x") && chain.contains("`.wh.`"),
        "{text} / {chain}"
    );
}

/// What a root stacking a layer's folder sees of one entry (see [`entries`]).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    path: String,
    mode: u32,
    owner: (u32, u32),
    /// A file's or an empty folder's; clamped to the epoch, as a later layer records it,
    /// for a folder with entries or a symlink (the time they were made); none for a whiteout
    /// (never recorded).
    mtime: Option<i64>,
    rdev: u64,
    xattrs: Vec<(String, Vec<u8>)>,
    /// The content, or the link's target.
    content: Vec<u8>,
    /// Every path of the same file (hard links).
    links: Vec<String>,
}

/// Each entry under `dir`, by path, with mtimes clamped to `epoch`.
fn entries(dir: &Path, epoch: i64) -> Vec<Entry> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut by_inode: std::collections::HashMap<u64, Vec<String>> = Default::default();
    let mut found = Vec::new();
    for path in walk(dir) {
        let rel = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let md = std::fs::symlink_metadata(&path).unwrap();
        let ty = md.file_type();
        let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(&path)
            .unwrap()
            .map(|n| {
                let value = xattr::get(&path, &n).unwrap().unwrap_or_default();
                (n.to_string_lossy().into_owned(), value)
            })
            .collect();
        xattrs.sort();
        let content = if ty.is_file() {
            std::fs::read(&path).unwrap()
        } else if ty.is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            Vec::new()
        };
        by_inode.entry(md.ino()).or_default().push(rel.clone());
        let entry = Entry {
            path: rel,
            mode: md.mode(),
            owner: (md.uid(), md.gid()),
            mtime: match () {
                _ if ty.is_char_device() => None,
                _ if ty.is_file() => Some(md.mtime()),
                _ if ty.is_dir() && std::fs::read_dir(&path).unwrap().next().is_none() => {
                    Some(md.mtime())
                }
                _ => Some(md.mtime().min(epoch)),
            },
            rdev: md.rdev(),
            xattrs,
            content,
            links: Vec::new(),
        };
        found.push((entry, md.ino()));
    }
    let mut entries: Vec<Entry> = found
        .into_iter()
        .map(|(mut entry, ino)| {
            entry.links = by_inode[&ino].clone();
            entry.links.sort();
            entry
        })
        .collect();
    entries.sort();
    entries
}

/// The hostile fixture as a registry layer would arrive: raw tar straight into the store.
fn hostile_layer(name: &str) -> Layer {
    let bytes = std::fs::read(common::root().join("fixtures/hostile").join(name)).unwrap();
    let info = env().store.put_bytes(&bytes).unwrap();
    Layer {
        descriptor: Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar",
            info.digest.clone(),
            info.size,
        ),
        diff_id: info.digest,
    }
}

fn hostile(name: &str) -> Result<Root, nua_sandbox::Error> {
    let layer = hostile_layer(name);
    // Unpacked afresh: the cache may hold it from a run under other rules.
    let hex = layer.diff_id.hex().to_owned();
    env().sandbox.forget_unpacked(&|name| name != hex).unwrap();
    env().sandbox.root(&[layer])
}

/// Hostile layers one at a time, so each sees only its own traces in the cache.
static HOSTILE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn refused(name: &str, entry: &str) {
    let _one = HOSTILE.lock().unwrap_or_else(|e| e.into_inner());
    // Other tests' commits keep their layers unpacked meanwhile: only this layer's folder
    // and half-unpacked ones count.
    let hex = hostile_layer(name).diff_id.hex().to_owned();
    let sandbox = env().dir.join("sandbox");
    let ours = |p: &PathBuf| match p.strip_prefix(sandbox.join("layers")) {
        Ok(rel) => rel.to_string_lossy().starts_with(['.']) || rel.starts_with(&hex),
        Err(_) => true,
    };
    let before = tree(&sandbox);
    let err = hostile(name).map(drop).unwrap_err().to_string();
    assert!(
        err.contains("refusing entry") && err.contains(entry),
        "{name}: {err}"
    );
    let after = tree(&sandbox);
    let new: Vec<_> = after.difference(&before).filter(|p| ours(p)).collect();
    assert!(new.is_empty(), "{name} left files behind: {new:?}");
}

#[test]
fn hostile_dotdot_is_refused() {
    refused("rootfs-dotdot-escape.tar", "etc/../../escaped.txt");
    assert!(!env().dir.join("sandbox/escaped.txt").exists() && !Path::new("/escaped.txt").exists());
}

#[test]
fn hostile_absolute_path_is_refused() {
    let passwd = std::fs::read("/etc/passwd").unwrap();
    refused("rootfs-absolute-path.tar", "/etc/passwd");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
}

#[test]
fn hostile_hardlink_outside_is_refused() {
    refused("rootfs-hardlink-outside.tar", "etc/shadow");
}

#[test]
fn hostile_symlink_escape_is_refused() {
    let outside = Path::new("/tmp/nua-hostile-symlink-target");
    let _ = std::fs::create_dir(outside);
    refused("rootfs-symlink-escape.tar", "evil/pwned.txt");
    assert!(!outside.join("pwned.txt").exists());
}

#[test]
fn hostile_device_node_is_refused() {
    refused("rootfs-device-node.tar", "mem");
}

#[test]
fn as_unprivileged_user() {
    if !common::sandbox::outer_root_run() {
        return;
    }
    let text = common::sandbox::rerun_as(
        common::sandbox::ROOTLESS_USER,
        &[
            "--include-ignored",
            "--skip",
            "as_unprivileged_user",
            "--test-threads",
            "2",
        ],
    );
    // Every other test of this file ran as the user, and passed.
    let expected = common::sandbox::tests_of_this_binary("as_unprivileged_user");
    assert!(expected >= 13, "{expected} tests listed");
    assert!(
        text.contains(&format!("{expected} passed; 0 failed")),
        "{text}"
    );
}

/// Every path under `dir`, sorted (to compare before and after).
fn tree(dir: &Path) -> std::collections::BTreeSet<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| !p.starts_with(dir.join("roots")))
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            let mut v = vec![p.clone()];
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                v.extend(walk(&p));
            }
            v
        })
        .collect()
}
