//! `nua-pack` is the builder alone: it links nothing of the run side (`nua-runtime`,
//! `nua-deploy`) nor bollard, the Docker client, while `nua` does. Read from the binaries
//! themselves, whose symbols and panic locations name every crate linked in.

fn names_crate(binary: &str, name: &[u8]) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    bytes.windows(name.len()).any(|w| w == name)
}

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
