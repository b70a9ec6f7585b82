//! The host's `git`, for `git-url`: `ls-remote` to pin a branch or tag to a commit without
//! cloning, and a shallow `clone`.
//!
//! git runs with `GIT_TERMINAL_PROMPT=0` and no standard input, so a private repository
//! fails at once instead of waiting for a password nobody will type, and with `LC_ALL=C`,
//! since its messages are read to tell a missing branch from a missing repository. URLs come
//! after `--`: a `git-url` starting with `-` is never taken for an option. Submodules and
//! Git LFS content are not fetched.

use std::process::{Command, Output, Stdio};

use super::error::{redact, FetchError};
use nua_oci::error::printable;

/// How many of git's last stderr lines an error quotes.
const STDERR_LINES: usize = 5;

/// The commit `reference` (a branch, else a tag; `HEAD` when `None`) of `url` points at.
pub(super) fn ls_remote(url: &str, reference: Option<&str>) -> Result<String, FetchError> {
    let patterns = match reference {
        // The order of preference of `git clone --branch`: a branch before a tag. An
        // annotated tag is a tag object; `^{}` asks for the commit it points at.
        Some(name) => vec![
            format!("refs/heads/{name}"),
            format!("refs/tags/{name}^{{}}"),
            format!("refs/tags/{name}"),
        ],
        None => vec!["HEAD".to_owned()],
    };
    let out = run(
        git()
            .args(["ls-remote", "--exit-code", "--", url])
            .args(&patterns),
        url,
    )?;
    let fail = |out: &Output| match out.status.code() {
        // `--exit-code`: the repository was read but no ref matched.
        Some(2) => FetchError::GitReference {
            url: url.to_owned(),
            reference: reference.unwrap_or("HEAD").to_owned(),
            stderr: stderr_tail(out, url),
        },
        Some(128) => FetchError::GitRepository {
            url: url.to_owned(),
            stderr: stderr_tail(out, url),
        },
        _ => FetchError::Git {
            url: url.to_owned(),
            command: "ls-remote".to_owned(),
            stderr: stderr_tail(out, url),
        },
    };
    if !out.status.success() {
        return Err(fail(&out));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let refs: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .collect();
    patterns
        .iter()
        .find_map(|pattern| refs.iter().find(|(_, name)| name == pattern))
        .map(|(id, _)| id.to_string())
        .filter(|id| is_commit_id(id))
        .ok_or_else(|| FetchError::Git {
            url: url.to_owned(),
            command: "ls-remote".to_owned(),
            stderr: format!("unexpected output: {}", printable(stdout.trim().as_bytes())),
        })
}

/// Clone `url` at `reference` (default branch when `None`) into `dest`, an empty folder,
/// with one commit of history; the commit checked out.
pub(super) fn clone(
    url: &str,
    reference: Option<&str>,
    dest: &std::path::Path,
) -> Result<String, FetchError> {
    let mut cmd = git();
    cmd.args(["clone", "--quiet", "--depth", "1", "--no-tags"]);
    if let Some(name) = reference {
        cmd.arg(format!("--branch={name}"));
    }
    let out = run(cmd.arg("--").arg(url).arg(dest), url)?;
    if !out.status.success() {
        let stderr = stderr_tail(&out, url);
        return Err(match reference {
            Some(name) if stderr.contains("not found in upstream") => FetchError::GitReference {
                url: url.to_owned(),
                reference: name.to_owned(),
                stderr,
            },
            _ => FetchError::GitRepository {
                url: url.to_owned(),
                stderr,
            },
        });
    }
    let out = run(git().arg("-C").arg(dest).args(["rev-parse", "HEAD"]), url)?;
    let head = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !is_commit_id(&head) {
        return Err(FetchError::Git {
            url: url.to_owned(),
            command: "rev-parse HEAD".to_owned(),
            stderr: stderr_tail(&out, url),
        });
    }
    Ok(head)
}

fn git() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .args(["-c", "advice.detachedHead=false"]);
    cmd
}

fn run(cmd: &mut Command, url: &str) -> Result<Output, FetchError> {
    cmd.output().map_err(|source| FetchError::GitMissing {
        url: url.to_owned(),
        source,
    })
}

/// A commit id: 40 hex characters (SHA-1 repositories) or 64 (SHA-256 ones).
fn is_commit_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The last lines of git's stderr, made safe to print (a remote can send anything), with
/// `url` shown without its credentials.
fn stderr_tail(out: &Output, url: &str) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = text
        .lines()
        .map(|l| printable(l.trim().as_bytes()))
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(STDERR_LINES)..].join("\n  ");
    tail.replace(url, &redact(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_git_says_how_to_install_it() {
        let err = run(&mut Command::new("/nonexistent/git"), "https://h/r.git").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, FetchError::GitMissing { .. }), "{message}");
        let hint = err.hint().unwrap_or_default();
        assert!(message.contains("https://h/r.git") && hint.contains("apt-get install git"));
    }

    #[test]
    fn stderr_is_quoted_short_and_printable() {
        use std::os::unix::process::ExitStatusExt;
        let out = Output {
            status: std::process::ExitStatus::from_raw(128 << 8),
            stdout: Vec::new(),
            stderr: b"1\n2\n\n3\n4 https://u:pw@h/r\n5\nremote: \x1b[31mred\x1b[0m\n".to_vec(),
        };
        assert_eq!(
            stderr_tail(&out, "https://u:pw@h/r"),
            "2\n  3\n  4 https://***@h/r\n  5\n  remote: \\u{1b}[31mred\\u{1b}[0m"
        );
    }
}
