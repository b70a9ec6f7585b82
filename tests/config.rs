//! The config module against the nua-compat corpus, the bad fixtures, the schema, and the
//! `check` command.

mod config {
    mod check_command;
    mod conformance;
    mod deploy;
    mod fixtures;
    mod schema;
}
