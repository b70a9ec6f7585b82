//! The command line shared by `nua-pack` and `nua`: clap definitions of the builder's
//! commands, settings resolved from flags and environment, their handlers, and the printing
//! of progress, results and errors. The libraries under `crates/` do the work and never
//! print.
//!
//! Only the builder's side is here: the run side's handlers live with the `nua` binary
//! (`src/bin/nua/`), so that `nua-pack` links nothing of `nua-runtime`, `nua-deploy` or
//! bollard.

pub mod cli;
