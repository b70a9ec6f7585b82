//! The record of backups: one row per backup of an instance, its outcome and, per
//! component, where it is in the repository and what its verification compared.

use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use super::{now, sqlite_error, Result, State};

/// A backup as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Backup {
    pub id: u64,
    pub label: String,
    /// The generation whose data it holds.
    pub generation: u64,
    /// `manual`, `schedule`, `upgrade` (taken before one), `safety` (before a restore).
    pub reason: String,
    /// Seconds since the epoch.
    pub started: u64,
    pub finished: Option<u64>,
    /// `running`, `verified`, or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per component: snapshot, sizes, what was verified (see `backup::Part`).
    pub components: Value,
}

fn backup_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Backup> {
    let components: String = row.get(8)?;
    Ok(Backup {
        id: row.get(0)?,
        label: row.get(1)?,
        generation: row.get(2)?,
        reason: row.get(3)?,
        started: row.get(4)?,
        finished: row.get(5)?,
        status: row.get(6)?,
        error: row.get(7)?,
        components: serde_json::from_str(&components).unwrap_or(Value::Null),
    })
}

const COLUMNS: &str = "id, label, generation, reason, started, finished, status, error, components";

impl State {
    /// Record a backup of `label` starting; its id. One left `running` by a process that
    /// stopped is marked failed.
    pub fn begin_backup(&mut self, label: &str, generation: u64, reason: &str) -> Result<u64> {
        let sqlite = sqlite_error(&self.path);
        let tx = self.conn.transaction().map_err(&sqlite)?;
        tx.execute(
            "UPDATE backups SET status = 'failed', finished = ?2,
             error = 'interrupted: the process stopped before it finished'
             WHERE label = ?1 AND status = 'running'",
            params![label, now()],
        )
        .map_err(&sqlite)?;
        tx.execute(
            "INSERT INTO backups (label, generation, reason, started, status, components)
             VALUES (?1, ?2, ?3, ?4, 'running', '[]')",
            params![label, generation, reason, now()],
        )
        .map_err(&sqlite)?;
        let id = tx.last_insert_rowid() as u64;
        tx.commit().map_err(&sqlite)?;
        Ok(id)
    }

    /// Record how backup `id` ended.
    pub fn finish_backup(
        &mut self,
        id: u64,
        verified: bool,
        error: Option<&str>,
        components: &Value,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE backups SET status = ?2, error = ?3, components = ?4, finished = ?5
                 WHERE id = ?1",
                params![
                    id,
                    if verified { "verified" } else { "failed" },
                    error,
                    components.to_string(),
                    now()
                ],
            )
            .map(|_| ())
            .map_err(self.sqlite())
    }

    /// Backups, oldest first: of `label`, or of every instance.
    pub fn backups(&self, label: Option<&str>) -> Result<Vec<Backup>> {
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM backups WHERE ?1 IS NULL OR label = ?1 ORDER BY id"
            ))
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map(params![label], backup_of)
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }

    /// Backup `id`.
    pub fn backup(&self, id: u64) -> Result<Option<Backup>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM backups WHERE id = ?1"),
                params![id],
                backup_of,
            )
            .optional()
            .map_err(self.sqlite())
    }

    /// Forget backup `id` (its snapshots are gone from the repository).
    pub fn forget_backup(&mut self, id: u64) -> Result<()> {
        self.conn
            .execute("DELETE FROM backups WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(self.sqlite())
    }

    /// A value kept under `name` (seconds since the epoch of something done).
    pub fn stamp(&self, name: &str) -> Result<Option<u64>> {
        self.conn
            .query_row(
                "SELECT value FROM counters WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.sqlite())
    }

    /// Keep `value` under `name`.
    pub fn set_stamp(&mut self, name: &str, value: u64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = ?2",
                params![name, value],
            )
            .map(|_| ())
            .map_err(self.sqlite())
    }
}
