//! Write a layer from a directory and print its digest; also generates the benchmark tree.
//!
//! ```text
//! write_layer gen DIR SIZE_MIB          # deterministic mixed tree of about SIZE_MIB
//! write_layer write DIR STORE [gzip|pgzip|zstd] [LEVEL]
//! ```
//! Used by `benches/compare_layer_writer.sh`.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use nua_oci::{BlobStore, Compression, LayerOptions, LayerWriter};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen", dir, size] => generate(Path::new(dir), size.parse().expect("SIZE_MIB")),
        ["write", dir, store, ref rest @ ..] => write(Path::new(dir), Path::new(store), rest),
        _ => {
            eprintln!(
                "usage: write_layer gen DIR SIZE_MIB | write DIR STORE [gzip|pgzip|zstd] [LEVEL]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&*e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn write(dir: &Path, store: &Path, rest: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let level = rest.get(1).map(|l| l.parse()).transpose()?;
    let compression = match rest.first().copied().unwrap_or("gzip") {
        "gzip" => Compression::Gzip(level.unwrap_or(6)),
        "pgzip" => Compression::ParallelGzip(level.unwrap_or(6)),
        "zstd" => Compression::Zstd(level.unwrap_or(3) as i32),
        other => return Err(format!("unknown compression `{other}`").into()),
    };
    let store = BlobStore::open(store)?;
    let opts = LayerOptions {
        compression,
        source_date_epoch: 0,
    };
    let mut writer = LayerWriter::new(&store, opts)?;
    writer.append_dir_tree(dir, "", Some((0, 0)), |_, _| true)?;
    let layer = writer.finish()?;
    println!(
        "{} {} {}",
        layer.descriptor.digest, layer.descriptor.size, layer.diff_id
    );
    Ok(())
}

/// xorshift64*: a fixed, seeded generator so every run makes the same tree.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "import",
    "def",
    "return",
    "self",
    "class",
    "the",
    "function",
    "value",
    "config",
    "nua",
    "container",
    "image",
    "layer",
    "digest",
    "const",
    "let",
    "if",
    "else",
    "for",
    "while",
    "string",
    "print",
    "error",
    "result",
    "{",
    "}",
    "(",
    ")",
    "=",
    "==",
    "+",
    "0",
    "1",
    "42",
];

fn text(rng: &mut Rng, len: usize, out: &mut impl Write) -> std::io::Result<()> {
    let mut line = String::new();
    let mut written = 0;
    while written < len {
        line.clear();
        for _ in 0..rng.below(12) + 1 {
            line.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            line.push(' ');
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        written += line.len();
    }
    Ok(())
}

/// Partly compressible: base64-like text of random bytes (~75%) mixed with raw random
/// blocks and repeated text, in 64 KiB pieces.
fn mixed(rng: &mut Rng, len: usize, out: &mut impl Write) -> std::io::Result<()> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut written = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while written < len {
        match rng.below(3) {
            0 => buf
                .iter_mut()
                .for_each(|b| *b = B64[rng.below(64) as usize]),
            1 => buf.iter_mut().for_each(|b| *b = rng.next() as u8),
            _ => {
                let mut t = Vec::new();
                text(rng, buf.len(), &mut t)?;
                let n = buf.len();
                buf.copy_from_slice(&t[..n]);
            }
        }
        let n = buf.len().min(len - written);
        out.write_all(&buf[..n])?;
        written += n;
    }
    Ok(())
}

fn generate(dir: &Path, size_mib: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let total = size_mib << 20;
    // About 20% small text files, 20% medium files, 60% a few large files.
    let (small, medium) = (total / 5, total / 5);
    let large = total - small - medium;
    let mut made = 0u64;
    let mut i = 0;
    while made < small {
        let path = dir.join(format!("src/pkg{:03}/mod{:05}.py", i % 400, i));
        let len = 512 + rng.below(16 * 1024) as usize;
        fs::create_dir_all(path.parent().unwrap())?;
        text(&mut rng, len, &mut BufWriter::new(fs::File::create(&path)?))?;
        made += len as u64;
        i += 1;
    }
    let mut made = 0u64;
    let mut i = 0;
    while made < medium {
        let path = dir.join(format!("assets/a{:04}.bin", i));
        let len = (256 << 10) + rng.below(2 << 20) as usize;
        fs::create_dir_all(path.parent().unwrap())?;
        mixed(&mut rng, len, &mut BufWriter::new(fs::File::create(&path)?))?;
        made += len as u64;
        i += 1;
    }
    for i in 0..4 {
        let path = dir.join(format!("data/large{i}.dat"));
        fs::create_dir_all(path.parent().unwrap())?;
        mixed(
            &mut rng,
            (large / 4) as usize,
            &mut BufWriter::new(fs::File::create(&path)?),
        )?;
    }
    Ok(())
}
