//! Find, parse, validate and normalize nua-config files.
