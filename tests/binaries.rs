//! What the binaries are, seen from outside: what they link and how they end.

use std::process::{Command, Stdio};

fn names_crate(binary: &str, name: &[u8]) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    bytes.windows(name.len()).any(|w| w == name)
}

/// `nua-pack` is the builder alone: it links nothing of the run side (`nua-runtime`,
/// `nua-deploy`) nor bollard, the Docker client, while `nua` does. Read from the binaries
/// themselves, whose symbols and panic locations name every crate linked in.
#[test]
fn nua_pack_links_no_run_side_and_nua_does() {
    let (pack, nua) = (env!("CARGO_BIN_EXE_nua-pack"), env!("CARGO_BIN_EXE_nua"));
    for name in ["bollard", "nua_runtime", "nua_deploy"] {
        // The same search finds it in `nua`: a search that could not find it proves nothing.
        assert!(
            names_crate(nua, name.as_bytes()),
            "`nua` does not show `{name}`"
        );
        assert!(
            !names_crate(pack, name.as_bytes()),
            "`nua-pack` links `{name}`"
        );
    }
}

/// `nua-pack base list --json | head` with a reader gone before the first write: the
/// command ends quietly and successfully (nothing is left to say, and no one to say it to),
/// without a panic.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    for (binary, args) in [
        (env!("CARGO_BIN_EXE_nua-pack"), ["base", "list", "--json"]),
        (env!("CARGO_BIN_EXE_nua"), ["base", "list", "--json"]),
    ] {
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{binary}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{binary}: {stderr}");
    }
}
