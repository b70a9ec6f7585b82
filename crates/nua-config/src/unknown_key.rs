//! Keys a table's schema does not know: a `snake_case` or upper-case spelling of a known key
//! is read as that key (with a warning), a retired key says what replaced it, anything else is
//! an unknown key with the nearest known one. The schema walk itself is in `validate`.

use super::error::Problem;
use super::messages::{did_you_mean, display_path, RETIRED};
use super::parse::Entry;
use super::validate::Findings;

/// The keys of a table: those the schema knows, those written, those already walked.
pub(crate) struct Keys<'a> {
    pub names: &'a [String],
    pub written: &'a [String],
    pub seen: &'a [String],
}

/// A key the schema does not know: a `snake_case` or upper-case spelling of a known key is
/// renamed (with a warning) and walked, `true`; anything else is a problem, `false`.
pub(crate) fn unknown_key(
    entry: &mut Entry,
    keys: &Keys<'_>,
    path: &[String],
    out: &mut Findings,
) -> bool {
    let kebab = entry.key.to_lowercase().replace('_', "-");
    let known = keys.names.contains(&kebab);
    if known && keys.written.contains(&kebab) {
        out.problems.push(
            Problem::new(
                entry.pos,
                format!(
                    "`{}` and `{kebab}` are the same key, given twice",
                    entry.key
                ),
            )
            .with_hint(format!("keep only `{kebab}`")),
        );
        false
    } else if known && !keys.seen.contains(&kebab) {
        out.warnings.push((
            entry.pos,
            format!(
                "`{}` in `{}` is spelled `{kebab}`; read as `{kebab}`",
                entry.key,
                display_path(path)
            ),
        ));
        entry.key = kebab;
        true
    } else if let Some((_, msg, hint)) = RETIRED.iter().find(|(k, _, _)| *k == kebab) {
        let msg = msg.replacen(&format!("`{kebab}`"), &format!("`{}`", entry.key), 1);
        out.problems
            .push(Problem::new(entry.pos, msg).with_hint(*hint));
        false
    } else {
        out.problems
            .push(unknown_key_problem(entry, keys.names, path));
        false
    }
}

/// `unknown key `x` in `build``, with the nearest known key or the list of them.
fn unknown_key_problem(entry: &Entry, names: &[String], path: &[String]) -> Problem {
    let place = if path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{}`", display_path(path))
    };
    let mut problem = Problem::new(entry.pos, format!("unknown key `{}` {place}", entry.key));
    problem.hint = Some(match did_you_mean(&entry.key, names) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!(
            "known keys here: {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    problem
}
