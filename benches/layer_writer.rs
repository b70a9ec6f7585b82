//! Criterion benchmark of the layer writer on a small generated tree (fast enough for CI).
//! The comparison with `tar | gzip` and `pigz` on a 1 GiB tree is
//! `benches/compare_layer_writer.sh`; results in `BENCHMARKS.md`.

use std::fs;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nua_oci::{BlobStore, Compression, LayerOptions, LayerWriter};

/// About 2 MiB: 200 small text files and 4 partly compressible 256 KiB files.
fn make_tree(root: &Path) -> u64 {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut total = 0;
    for i in 0..200 {
        let dir = root.join(format!("src/pkg{}", i % 10));
        fs::create_dir_all(&dir).unwrap();
        let body: String = (0..200)
            .map(|j| format!("def f{j}(x): return x * {}\n", next() % 1000))
            .collect();
        total += body.len() as u64;
        fs::write(dir.join(format!("m{i}.py")), body).unwrap();
    }
    fs::create_dir_all(root.join("data")).unwrap();
    for i in 0..4 {
        let body: Vec<u8> = (0..256 * 1024)
            .map(|j| {
                if j % 3 == 0 {
                    next() as u8
                } else {
                    b'a' + (j % 26) as u8
                }
            })
            .collect();
        total += body.len() as u64;
        fs::write(root.join(format!("data/blob{i}")), body).unwrap();
    }
    total
}

fn bench(c: &mut Criterion) {
    let tree = tempfile::tempdir().unwrap();
    let bytes = make_tree(tree.path());
    let mut group = c.benchmark_group("layer_writer");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    for (name, compression) in [
        ("gzip-6", Compression::Gzip(6)),
        ("parallel-gzip-6", Compression::ParallelGzip(6)),
        ("zstd-3", Compression::Zstd(3)),
    ] {
        let store_dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(store_dir.path()).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let opts = LayerOptions {
                    compression,
                    source_date_epoch: 0,
                };
                let mut w = LayerWriter::new(&store, opts).unwrap();
                w.append_dir_tree(tree.path(), "nua/app", Some((1000, 1000)), |_, _| true)
                    .unwrap();
                w.finish().unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
