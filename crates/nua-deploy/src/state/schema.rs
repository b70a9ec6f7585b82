//! The tables of the state database and their migrations, by `PRAGMA user_version`.

use std::path::Path;

use rusqlite::Connection;

use super::{Error, Result};

/// Each migration takes the schema from its index to the next version (the first from an
/// empty database to version 1). Append only: a released migration never changes.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: instances and their journal, encrypted secrets, counters.
    "CREATE TABLE generations (
         label    TEXT NOT NULL,
         number   INTEGER NOT NULL,
         kind     TEXT NOT NULL CHECK (kind IN ('deploy', 'upgrade', 'remove', 'rollback')),
         actor    TEXT NOT NULL,
         started  INTEGER NOT NULL,
         finished INTEGER,
         outcome  TEXT NOT NULL CHECK (outcome IN ('pending', 'succeeded', 'failed')),
         error    TEXT,
         desired  TEXT NOT NULL,
         PRIMARY KEY (label, number)
     );
     CREATE TABLE instances (
         label      TEXT PRIMARY KEY,
         generation INTEGER NOT NULL,
         desired    TEXT NOT NULL,
         FOREIGN KEY (label, generation) REFERENCES generations (label, number)
     );
     CREATE TABLE secrets (
         label  TEXT NOT NULL,
         name   TEXT NOT NULL,
         nonce  BLOB NOT NULL,
         sealed BLOB NOT NULL,
         PRIMARY KEY (label, name)
     );
     CREATE TABLE counters (
         name  TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     );",
    // 2: an instance stopped on purpose stays stopped (`nua stop`, `nua start`).
    "ALTER TABLE instances ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;",
    // 3: backups, and what each verified.
    "CREATE TABLE backups (
         id         INTEGER PRIMARY KEY AUTOINCREMENT,
         label      TEXT NOT NULL,
         generation INTEGER NOT NULL,
         reason     TEXT NOT NULL,
         started    INTEGER NOT NULL,
         finished   INTEGER,
         status     TEXT NOT NULL CHECK (status IN ('running', 'verified', 'failed')),
         error      TEXT,
         components TEXT NOT NULL
     );
     CREATE INDEX backups_by_label ON backups (label, id);",
];

/// The schema version this code writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the database of `path` to [`VERSION`], each migration in its own transaction.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let sqlite = |source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let found: u32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite)?;
    if found > VERSION {
        return Err(Error::Newer {
            path: path.to_path_buf(),
            found,
            known: VERSION,
        });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .map_err(sqlite)?;
        // Another process may have migrated while this one waited for the lock.
        let now: u32 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sqlite)?;
        if now > from as u32 {
            continue;
        }
        tx.execute_batch(migration).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", from as u32 + 1)
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
    }
    Ok(())
}
