//! OCI image primitives: digests, canonical JSON, blob store, layers, layouts.
