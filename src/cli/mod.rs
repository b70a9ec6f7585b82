//! Command line: clap definitions and handlers. The only place that prints.

pub mod args;
pub mod commands;
pub mod progress;
pub mod remote_cache;
pub mod settings;
pub mod transfer;

use std::fmt;
use std::process::ExitCode;

use clap::Parser;

use args::{PackCli, PackCommand};

/// `nua-pack`: parse the command line, run the command, print its error if any.
pub fn main_pack() -> ExitCode {
    let cli = PackCli::parse();
    finish(dispatch_pack(&cli.command))
}

/// `println!` that returns an error instead of panicking: a reader that went away (`nua ps
/// --json | head`) ends the command quietly through [`finish`], while SIGPIPE stays ignored
/// (a credential helper or a daemon that closes its end must give an error, not kill us).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

/// Write one line on standard output; see [`outln!`].
pub fn write_line(line: fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// The reader of standard output went away: nothing is left to say, and no one to say it to.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Run one of the builder's commands (shared by `nua-pack` and `nua`).
pub fn dispatch_pack(cmd: &PackCommand) -> anyhow::Result<ExitCode> {
    // Checked once for every command: the Debian and source downloads read it too.
    settings::low_speed()?;
    match cmd {
        PackCommand::Check(args) => commands::check::run(args),
        PackCommand::Build(args) => commands::build::run(args),
        PackCommand::Base(cmd) => commands::base::run(cmd),
        PackCommand::Pull(args) => commands::pull::run(args),
        PackCommand::Push(args) => commands::push::run(args),
        PackCommand::Inspect(args) => commands::inspect::run(args),
        PackCommand::Cache(cmd) => commands::cache::run(cmd),
    }
}

/// What the user can do about an error, said once after the error chain as a `hint:` line.
///
/// Hints come one way: as data beside an error's message, never inside it. The command line
/// attaches its own with `.context(Hint("…".into()))`; a library error carries its own,
/// returned by its `hint()`; [`finish`] asks the chain for them, in that order.
#[derive(Debug)]
pub struct Hint(pub std::borrow::Cow<'static, str>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hint of an error: the command line's own, else the first a library error of the chain
/// gives.
fn hint_of(err: &anyhow::Error) -> Option<String> {
    if let Some(hint) = err.downcast_ref::<Hint>() {
        return Some(hint.0.to_string());
    }
    err.chain().find_map(library_hint)
}

/// The hint a library error carries, for the error types that carry one.
fn library_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    macro_rules! ask {
        ($($error:ty),* $(,)?) => {$(
            if let Some(hint) = cause.downcast_ref::<$error>().and_then(|e| e.hint()) {
                return Some(hint);
            }
        )*};
    }
    ask!(
        nua_config::Error,
        nua_build::Error,
        nua_build::base::BaseError,
        nua_build::fetch::FetchError,
        nua_registry::Error,
        nua_debian::Error,
        nua_sandbox::Error,
        nua_oci::Error,
    );
    None
}

/// Print an error chain once, then its hint, and map it to exit code 1.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    let err = match result {
        Ok(code) => return code,
        Err(err) => err,
    };
    if err.downcast_ref::<StdoutClosed>().is_some() {
        return ExitCode::SUCCESS;
    }
    print_error(&err);
    ExitCode::FAILURE
}

/// Print an error chain on stderr, each cause once, then its hint.
pub fn print_error(err: &anyhow::Error) {
    let hint = hint_of(err);
    // A `Hint` context is also one link of anyhow's chain: shown once, as the hint.
    let mut causes = err
        .chain()
        .map(|c| c.to_string())
        .filter(|c| Some(c) != hint.as_ref());
    if let Some(first) = causes.next() {
        eprintln!("error: {first}");
    }
    for cause in causes {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_error() -> nua_registry::Error {
        nua_registry::Error::AuthRequired {
            registry: "127.0.0.1:5000".into(),
            tried: "no credentials".into(),
        }
    }

    #[test]
    fn a_library_error_deep_in_the_chain_gives_its_hint() {
        let err = anyhow::Error::new(registry_error())
            .context("cannot pull `127.0.0.1:5000/app`")
            .context("cannot build `app`");
        assert_eq!(
            hint_of(&err).as_deref(),
            Some("pass `--username USER --password-stdin`, or run `docker login 127.0.0.1:5000`")
        );
        // Through a wrapper that is transparent, the inner error's hint still comes out.
        let fetch = nua_build::fetch::FetchError::GitReference {
            url: "https://example.invalid/r.git".into(),
            reference: "v9".into(),
            stderr: String::new(),
        };
        let err = anyhow::Error::new(nua_build::Error::Fetch {
            source: Box::new(fetch),
        });
        assert_eq!(
            hint_of(&err).as_deref(),
            Some("check `git-branch` (a branch or tag name)")
        );
    }

    #[test]
    fn the_command_lines_own_hint_comes_first_and_no_hint_is_none() {
        let err = anyhow::Error::new(registry_error()).context(Hint("do this instead".into()));
        assert_eq!(hint_of(&err).as_deref(), Some("do this instead"));
        let err = anyhow::anyhow!("plain failure").context("while doing something");
        assert_eq!(hint_of(&err), None);
    }

    #[test]
    fn no_message_of_the_chain_holds_a_hint() {
        let err = anyhow::Error::new(registry_error()).context("cannot pull");
        assert!(err.chain().all(|c| !c.to_string().contains("hint:")));
    }
}
