//! Errors and warnings of the config module: every one names the file, and the line and
//! column where that makes sense. `Display` is the complete user-facing message; a next step,
//! when there is one, comes from [`Error::hint`].

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    /// The line and column of a byte offset in `text`.
    pub fn from_offset(text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let col = text[line_start..offset].chars().count() + 1;
        Pos { line, col }
    }
}

/// One thing wrong in a config file, at a position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(pos: Pos, message: impl Into<String>) -> Problem {
        Problem {
            line: pos.line,
            col: pos.col,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }
}

/// Something the loader fixed or ignored and wants the user to know (a legacy key moved to
/// its new place). Warnings never stop a load unless [`super::LoadOptions::strict`] is set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No config file in any of the searched places.
    #[error("no nua-config found in `{}`: searched {}", dir.display(), list_paths(searched))]
    NotFound {
        dir: PathBuf,
        searched: Vec<PathBuf>,
    },
    /// Two config files in the same folder: which one is meant is unclear.
    #[error("two nua-config files in `{}`: `{}` and `{}`", first.parent().unwrap_or(first).display(), first.display(), second.display())]
    Ambiguous { first: PathBuf, second: PathBuf },
    /// The path given does not exist.
    #[error("`{}` does not exist", path.display())]
    Missing { path: PathBuf },
    /// A file whose extension is none of toml, json, yaml, yml.
    #[error("`{}` is not a nua-config: the extension must be one of `.toml`, `.json`, `.yaml`, `.yml`", path.display())]
    Extension { path: PathBuf },
    /// The file could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, JSON or YAML.
    #[error("{}:{}:{}: invalid {format}: {message}", file.display(), pos.line, pos.col)]
    Syntax {
        file: PathBuf,
        format: &'static str,
        pos: Pos,
        message: String,
    },
    /// The file parses but does not describe a valid app.
    #[error("{}", fmt_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    /// `--strict`: warnings are errors.
    #[error("{}", fmt_strict(file, warnings))]
    Strict {
        file: PathBuf,
        warnings: Vec<Warning>,
    },
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotFound { .. } => Some(
                "create `nua-config.toml` in the app folder, or pass the path of the config file"
                    .into(),
            ),
            Error::Ambiguous { second, .. } => Some(format!(
                "remove one of them, or pass the file to use, e.g. `{}`",
                second.display()
            )),
            // With several problems, each hint is printed under its problem by `Display`.
            Error::Invalid { problems, .. } if problems.len() == 1 => problems[0].hint.clone(),
            Error::Missing { .. } => Some("give the app folder or its nua-config file".into()),
            Error::Extension { .. } => {
                Some("name the file `nua-config.toml` (or `.json`, `.yaml`)".into())
            }
            Error::Strict { .. } => {
                Some("move the keys where the warnings say, or drop `--strict`".into())
            }
            _ => None,
        }
    }

    /// The config file concerned, when one was found.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Error::Syntax { file, .. }
            | Error::Invalid { file, .. }
            | Error::Strict { file, .. } => Some(file),
            Error::Io { path, .. } | Error::Extension { path } => Some(path),
            _ => None,
        }
    }

    /// The problems with positions, for `--json` output.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Error::Invalid { problems, .. } => problems.clone(),
            Error::Syntax {
                pos,
                message,
                format,
                ..
            } => {
                vec![Problem::new(*pos, format!("invalid {format}: {message}"))]
            }
            Error::Strict { warnings, .. } => warnings
                .iter()
                .map(|w| {
                    Problem::new(
                        Pos {
                            line: w.line,
                            col: w.col,
                        },
                        w.message.clone(),
                    )
                })
                .collect(),
            other => vec![Problem::new(Pos::default(), other.to_string())],
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
    names.join(", ")
}

fn fmt_problems(file: &std::path::Path, problems: &[Problem]) -> String {
    let mut lines = Vec::new();
    for p in problems {
        lines.push(format!(
            "{}:{}:{}: {}",
            file.display(),
            p.line,
            p.col,
            p.message
        ));
        if let (Some(hint), true) = (&p.hint, problems.len() > 1) {
            lines.push(format!("  hint: {hint}"));
        }
    }
    if problems.len() > 1 {
        lines.insert(
            0,
            format!("{} problems in `{}`:", problems.len(), file.display()),
        );
    }
    lines.join("\n")
}

fn fmt_strict(file: &std::path::Path, warnings: &[Warning]) -> String {
    let mut lines = vec![format!(
        "--strict: {} warning(s) in `{}`, each an error:",
        warnings.len(),
        file.display()
    )];
    lines.extend(warnings.iter().map(Warning::to_string));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("abc", 0, 1, 1)]
    #[case("abc", 2, 1, 3)]
    #[case("a\nbc", 2, 2, 1)]
    #[case("a\nbc", 3, 2, 2)]
    #[case("é\nx", 1, 1, 2)]
    fn offsets_become_line_and_column(
        #[case] text: &str,
        #[case] offset: usize,
        #[case] line: usize,
        #[case] col: usize,
    ) {
        let offset = if text.is_char_boundary(offset) {
            offset
        } else {
            offset + 1
        };
        assert_eq!(Pos::from_offset(text, offset), Pos { line, col });
    }
}
