//! Commit cost of a sandbox step that changes a few files, over a small base (2,000 files)
//! and a base ten times larger: the commit walks only the upper directory, so the two must
//! cost the same. Needs user namespaces and overlayfs (see `nua_sandbox`).
//!
//! `cargo bench --bench sandbox_commit`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use nua_oci::{BlobStore, Layer, LayerOptions, LayerWriter, Meta};
use nua_sandbox::{Bind, Command, Sandbox};

/// A base layer of `files` small files spread over 100 directories.
fn base(store: &BlobStore, files: usize) -> Layer {
    let mut w = LayerWriter::new(store, LayerOptions::default()).unwrap();
    for d in 0..100 {
        w.add_dir(&format!("data/{d:03}"), &Meta::new(0o755))
            .unwrap();
        for f in 0..files / 100 {
            let content = format!("file {d}/{f}\n");
            w.add_bytes(
                &format!("data/{d:03}/{f:05}"),
                &Meta::new(0o644),
                content.as_bytes(),
            )
            .unwrap();
        }
    }
    // Merged-/usr links, so the host's /usr bound in makes a working shell.
    w.add_dir("usr", &Meta::new(0o755)).unwrap();
    for link in ["bin", "lib", "lib64"] {
        w.add_symlink(link, &format!("usr/{link}"), &Meta::new(0o777))
            .unwrap();
    }
    w.finish().unwrap()
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let sandbox = Sandbox::new(&tmp.path().join("sandbox"), &store).unwrap();
    // The step runs the host's shell through a read-only bind of /usr: the base has none.
    let mut step = Command::shell(
        "echo new > /data/000/00000; echo added > /data/050/extra; \
         rm /data/099/00001; mkdir /data/new",
    );
    step.mounts.push(Bind::read_only("/usr", "/usr"));
    let mut group = c.benchmark_group("sandbox_commit");
    group.sample_size(20);
    for files in [2_000, 20_000] {
        let layer = base(&store, files);
        drop(sandbox.root(std::slice::from_ref(&layer)).unwrap()); // unpack once
        group.bench_function(format!("few_changes_over_{files}_files"), |b| {
            b.iter_batched(
                || {
                    let mut root = sandbox.root(std::slice::from_ref(&layer)).unwrap();
                    let status = root.run(&step, &mut |_, _| {}).unwrap();
                    assert!(status.success(), "{status:?}");
                    root
                },
                |root| black_box(root.commit(&LayerOptions::default()).unwrap()),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
