//! The build: nua-config → image layers → OCI image tarball.
