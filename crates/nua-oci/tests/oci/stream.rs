//! Layers from existing tar streams (root filesystem tarballs): normalized, and refused when
//! hostile or not a tar at all.

use super::*;

/// A raw ustar header, bypassing the `tar` crate's own path checks.
pub(crate) fn raw_entry(out: &mut Vec<u8>, path: &str, kind: u8, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
    h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(data.len() as u64);
    h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
    h.set_mtime(EPOCH + 99);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root").unwrap();
    if kind == b'3' {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn rootfs_tarball_becomes_a_normalized_layer() {
    let mut tar = Vec::new();
    raw_entry(&mut tar, "./", b'5', "", b"");
    raw_entry(&mut tar, "./etc/", b'5', "", b"");
    raw_entry(&mut tar, "./etc/hostname", b'0', "", b"debian\n");
    raw_entry(&mut tar, "./etc/hostname.bak", b'1', "./etc/hostname", b"");
    raw_entry(
        &mut tar,
        "./etc/localtime",
        b'2',
        "/usr/share/zoneinfo/UTC",
        b"",
    );
    raw_entry(&mut tar, "./dev/null", b'3', "", b"");
    tar.extend_from_slice(&[0; 1024]);
    let (_store_dir, store) = temp_store();
    let mut layers = Vec::new();
    for input in [tar.clone(), gzip(&tar)] {
        let mut w = LayerWriter::new(&store, opts()).unwrap();
        w.append_tar_stream(&input[..]).unwrap();
        layers.push(w.finish().unwrap());
    }
    assert_eq!(
        layers[0], layers[1],
        "gzip input is detected and gives the same layer"
    );
    insta::assert_snapshot!(
        "rootfs_layer_listing",
        listing(&layer_tar(&store, &layers[0]))
    );
}

#[test]
fn rootfs_tarball_with_escaping_paths_is_refused() {
    for (path, kind, link, named) in [
        ("../escape", b'0', "", "../escape"),
        ("./etc/../../x", b'0', "", "./etc/../../x"),
        ("/etc/passwd", b'0', "", "/etc/passwd"),
        ("./ok", b'1', "../../etc/shadow", "./ok"),
    ] {
        let mut tar = Vec::new();
        raw_entry(&mut tar, path, kind, link, b"");
        tar.extend_from_slice(&[0; 1024]);
        let (_store_dir, store) = temp_store();
        let mut w = LayerWriter::new(&store, opts()).unwrap();
        let err = w.append_tar_stream(&tar[..]).unwrap_err();
        assert!(matches!(err, Error::PathEscape { .. }), "{path}: {err}");
        assert!(err.to_string().contains(named), "{err}");
        drop(w);
        assert_eq!(
            fs::read_dir(store.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}

/// The whole error chain, each message checked free of control characters.
pub(crate) fn printable_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let message = e.to_string();
        assert!(
            !message.chars().any(char::is_control),
            "control characters in {message:?}"
        );
        messages.push(message);
        next = e.source();
    }
    messages.join(": ")
}

#[test]
fn input_that_is_not_a_tar_is_refused_clearly() {
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    let text = "Nua is a self-hosting platform.\n".repeat(40);
    let mut zeros_only = vec![0u8; 1024];
    zeros_only.extend_from_slice(&[0; 9216]);
    for (what, input, reason) in [
        ("empty input", Vec::new(), "the archive is empty"),
        ("empty gzip", gzip(b""), "the archive is empty"),
        (
            "end-of-archive blocks only",
            zeros_only.clone(),
            "the archive is empty (it holds only end-of-archive blocks)",
        ),
        (
            "gzip of end-of-archive blocks",
            gzip(&zeros_only),
            "the archive is empty (it holds only end-of-archive blocks)",
        ),
        (
            "random bytes",
            random.clone(),
            "the first block has no `ustar` magic and a bad checksum",
        ),
        (
            "gzip of random bytes",
            gzip(&random),
            "the first block has no `ustar` magic and a bad checksum",
        ),
        (
            "a text file",
            text.into_bytes(),
            "the first block has no `ustar` magic and a bad checksum",
        ),
        (
            "a short text file",
            b"hello\n".to_vec(),
            "the input ends after 6 bytes, before the end of the first 512-byte header",
        ),
    ] {
        let (_store_dir, store) = temp_store();
        let mut w = LayerWriter::new(&store, opts()).unwrap();
        let err = w.append_tar_stream(&input[..]).unwrap_err();
        assert!(matches!(err, Error::NotATar { .. }), "{what}: {err:?}");
        assert_eq!(
            printable_chain(&err),
            format!("not a tar archive: {reason}"),
            "{what}"
        );
    }
}

#[test]
fn hostile_entry_names_are_escaped_in_errors() {
    // A name with an escape sequence and invalid UTF-8 that escapes the root.
    let mut tar = Vec::new();
    raw_entry(&mut tar, "../\x1b[2Jevil", b'0', "", b"");
    tar[7] = 0xff;
    let mut h = tar::Header::from_byte_slice(&tar[..512]).clone();
    h.set_cksum();
    tar[..512].copy_from_slice(h.as_bytes());
    tar.extend_from_slice(&[0; 1024]);
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    let err = w.append_tar_stream(&tar[..]).unwrap_err();
    assert!(matches!(err, Error::PathEscape { .. }), "{err:?}");
    let message = printable_chain(&err);
    assert!(message.contains("../\\u{1b}[2J\u{fffd}vil"), "{message}");

    // A header the tar parser itself refuses: its message quotes the name and the field.
    let mut tar = Vec::new();
    raw_entry(&mut tar, "ok", b'0', "", b"fine");
    let start = tar.len();
    raw_entry(&mut tar, "bell\x07name", b'0', "", b"");
    tar[start + 100..start + 108].copy_from_slice(b"\x07\x1bzz\0\0\0\0");
    let mut h = tar::Header::from_byte_slice(&tar[start..start + 512]).clone();
    h.set_cksum();
    tar[start..start + 512].copy_from_slice(h.as_bytes());
    tar.extend_from_slice(&[0; 1024]);
    let mut w = LayerWriter::new(&store, opts()).unwrap();
    let err = w.append_tar_stream(&tar[..]).unwrap_err();
    let message = printable_chain(&err);
    assert!(message.contains("bell\\u{7}name"), "{message}");
}

#[test]
fn zstd_layers_have_their_media_type() {
    let (_store_dir, store) = temp_store();
    let mut w = LayerWriter::new(
        &store,
        LayerOptions {
            compression: Compression::Zstd(3),
            source_date_epoch: 0,
        },
    )
    .unwrap();
    w.add_file("a", &Meta::new(0o644), 3, &b"abc"[..]).unwrap();
    let layer = w.finish().unwrap();
    assert_eq!(layer.descriptor.media_type, media_type::LAYER_ZSTD);
    assert!(listing(&layer_tar(&store, &layer)).contains(" 3 a\n"));
}

#[test]
fn digest_mismatch_leaves_nothing_in_blobs() {
    let (_store_dir, store) = temp_store();
    let mut w = store.writer().unwrap();
    w.write_all(b"tampered").unwrap();
    let err = w.commit(Some(&Digest::of(b"original"))).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }));
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}
