//! The bridge to Docker Engine at run time; the only user of bollard.
