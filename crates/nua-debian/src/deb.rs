//! Reading `.deb` files (deb(5)): an `ar` archive whose members are `debian-binary`
//! (`2.0`), `control.tar[.gz|.xz|.zst]` and `data.tar[.gz|.xz|.zst]`, in that order.
//!
//! The `ar` format is parsed here (60-byte headers, members padded to an even offset) and each
//! tar member is handed to a visitor as a decompressed stream: nothing holds a whole package
//! in memory.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};

use super::error::{Error, Result};

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
/// Largest control member file kept in memory (md5sums of huge packages are a few MiB).
const CONTROL_FILE_LIMIT: u64 = 64 << 20;

/// Which tar member of a `.deb` is being visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Control,
    Data,
}

/// Walk the tar members of a `.deb`, handing each decompressed stream to `visit`.
pub fn walk(
    input: impl Read,
    package: &str,
    mut visit: impl FnMut(Part, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let bad = |reason: String| Error::Deb {
        package: package.to_owned(),
        reason,
    };
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|e| bad(format!("cannot read the ar magic: {e}")))?;
    if &magic != AR_MAGIC {
        return Err(bad("it does not start with the `!<arch>` magic".to_owned()));
    }
    let mut seen = Vec::new();
    loop {
        let mut header = [0u8; 60];
        match read_full(&mut input, &mut header) {
            Ok(0) => break,
            Ok(60) => {}
            Ok(_) => return Err(bad("truncated ar header".to_owned())),
            Err(e) => return Err(bad(format!("read failed: {e}"))),
        }
        if &header[58..60] != b"`\n" {
            return Err(bad("corrupt ar header".to_owned()));
        }
        let name = String::from_utf8_lossy(&header[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_owned();
        let size: u64 = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad(format!("member `{name}` has an invalid size")))?;
        let mut member = (&mut input).take(size);
        let part = match name.as_str() {
            "debian-binary" => {
                let mut v = String::new();
                (&mut member).take(16).read_to_string(&mut v).ok();
                if !v.starts_with("2.") {
                    return Err(bad(format!("unsupported format version `{}`", v.trim())));
                }
                None
            }
            n if n.starts_with("control.tar") => Some(Part::Control),
            n if n.starts_with("data.tar") => Some(Part::Data),
            n if n.starts_with('_') => None,
            n => return Err(bad(format!("unexpected ar member `{n}`"))),
        };
        if let Some(part) = part {
            if seen.contains(&part) || (part == Part::Data && !seen.contains(&Part::Control)) {
                return Err(bad(format!(
                    "member `{name}` is duplicated or out of order"
                )));
            }
            seen.push(part);
            let suffix = name.rsplit_once(".tar").map_or("", |(_, s)| s);
            let mut stream = decompressor(&mut member, suffix)
                .ok_or_else(|| bad(format!("unsupported compression of `{name}`")))?;
            visit(part, &mut stream)?;
        }
        io::copy(&mut member, &mut io::sink())
            .map_err(|e| bad(format!("reading `{name}` failed: {e}")))?;
        if member.limit() != 0 {
            return Err(bad(format!("member `{name}` is truncated")));
        }
        if size % 2 == 1 {
            let mut pad = [0u8; 1];
            let _ = input.read(&mut pad);
        }
    }
    if seen != [Part::Control, Part::Data] {
        return Err(bad("it lacks `control.tar` or `data.tar`".to_owned()));
    }
    Ok(())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn decompressor<'a>(r: &'a mut dyn Read, suffix: &str) -> Option<Box<dyn Read + 'a>> {
    Some(match suffix {
        "" => Box::new(r),
        ".gz" => Box::new(flate2::read::GzDecoder::new(r)),
        ".xz" => Box::new(liblzma::read::XzDecoder::new(r)),
        ".zst" => Box::new(zstd::stream::read::Decoder::new(r).ok()?),
        _ => return None,
    })
}

/// The files of `control.tar` by name (`control`, `md5sums`, `postinst`, ...).
pub fn read_control(tar_stream: &mut dyn Read, package: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let bad = |reason: String| Error::Deb {
        package: package.to_owned(),
        reason,
    };
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("control.tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("control.tar: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = path.trim_start_matches("./");
        if name.contains('/') || name.is_empty() || name.starts_with('.') {
            return Err(bad(format!("control.tar has an unexpected entry `{path}`")));
        }
        let name = name.to_owned();
        if entry.size() > CONTROL_FILE_LIMIT {
            return Err(bad(format!("control file `{name}` is too large")));
        }
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut content)
            .map_err(|e| bad(format!("control.tar `{name}`: {e}")))?;
        files.insert(name, content);
    }
    if !files.contains_key("control") {
        return Err(bad("control.tar has no `control` file".to_owned()));
    }
    Ok(files)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a `.deb` in memory (tests and fixtures): control and data as plain tars.
    pub(crate) fn build_deb(control: &[(&str, &[u8])], data: &[u8]) -> Vec<u8> {
        let mut ctl = tar::Builder::new(Vec::new());
        for (name, content) in control {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            ctl.append_data(&mut h, format!("./{name}"), *content)
                .unwrap();
        }
        let ctl = ctl.into_inner().unwrap();
        let mut out = AR_MAGIC.to_vec();
        for (name, body) in [
            ("debian-binary", &b"2.0\n"[..]),
            ("control.tar", &ctl),
            ("data.tar", data),
        ] {
            out.extend_from_slice(
                format!(
                    "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    0,
                    0,
                    0,
                    100644,
                    body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(body);
            if body.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn walks_members_in_order() {
        let deb = build_deb(
            &[("control", b"Package: x\n")],
            &tar::Builder::new(Vec::new()).into_inner().unwrap(),
        );
        let mut parts = Vec::new();
        walk(&deb[..], "x", |part, r| {
            if part == Part::Control {
                let files = read_control(r, "x")?;
                assert_eq!(files["control"], b"Package: x\n");
            }
            parts.push(part);
            Ok(())
        })
        .unwrap();
        assert_eq!(parts, [Part::Control, Part::Data]);
    }

    #[test]
    fn garbage_is_refused_with_the_package_name() {
        let err = walk(&b"PK\x03\x04 not a deb"[..], "evil", |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("`evil`"), "{err}");
        let mut deb = build_deb(&[("control", b"Package: x\n")], b"");
        deb.truncate(deb.len() - 10);
        assert!(walk(&deb[..], "x", |_, _| Ok(())).is_err());
    }
}
