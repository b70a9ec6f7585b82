//! Commands run in a running container (exec): their output collected whole
//! ([`Engine::exec`](crate::Engine::exec)), or streamed in and out for data of any size
//! ([`Engine::exec_stream`](crate::Engine::exec_stream)).
//!
//! Docker offers no call to stop a command run this way: it ends by itself or with its
//! container. Hanging up on it only closes its standard input; its output is then discarded.

use std::io::{Read, Write};
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models;
use bytes::Bytes;
use futures_util::future::{self, Either};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::containers::not_found;
use super::{api, Docker};
use crate::types::*;
use crate::Error;

/// The most read from the input at once, and the read buffer of the output.
const CHUNK: usize = 64 * 1024;
/// Pieces of input read ahead of what Docker has taken: with [`CHUNK`], at most half a
/// megabyte of a stream of any size is held.
const CHUNKS_AHEAD: usize = 8;
/// How long Docker may take to record the exit code once the output has ended.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_POLL: Duration = Duration::from_millis(20);

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, BollardError>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// What ended a streamed exec before its output did.
enum Broken {
    Docker(BollardError),
    Input(std::io::Error),
    Output(std::io::Error),
}

impl Docker {
    pub(super) fn run_exec(&self, name: &str, command: &[&str]) -> Result<ExecOutput, Error> {
        let config = models::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        };
        self.runtime.block_on(async {
            let (id, mut output, _input) = self.start_exec(name, config).await?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = output.next().await {
                match chunk.map_err(api("POST /exec/{id}/start"))? {
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    other => stdout.extend_from_slice(other.as_ref()),
                }
            }
            Ok(ExecOutput {
                exit_code: self.exit_code(&id).await?,
                stdout,
                stderr,
            })
        })
    }

    pub(super) fn stream_exec(
        &self,
        name: &str,
        exec: &Exec,
        stdin: Option<&mut (dyn Read + Send)>,
        stdout: &mut (dyn Write + Send),
    ) -> Result<ExecStatus, Error> {
        let config = models::ExecConfig {
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(exec.command.clone()),
            env: Some(exec.env.clone()),
            user: exec.user.clone(),
            ..Default::default()
        };
        let (id, output, input) = self.runtime.block_on(self.start_exec(name, config))?;
        let mut status = ExecStatus::default();
        let copied = std::thread::scope(|scope| {
            // The reader blocks: it is read by a thread of its own, which stops at the first
            // piece the exec no longer takes (the receiver is dropped when this returns).
            let pieces = stdin.map(|reader| {
                let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
                scope.spawn(move || read_input(reader, &tx));
                rx
            });
            self.runtime.block_on(async {
                let drained = pin!(copy_output(output, stdout, &mut status));
                let Some(pieces) = pieces else {
                    return drained.await;
                };
                let fed = pin!(copy_input(pieces, input));
                match future::select(drained, fed).await {
                    // The command has ended, whatever is left of its input.
                    Either::Left((drained, _)) => drained,
                    Either::Right((Ok(()), drained)) => drained.await,
                    Either::Right((Err(err), _)) => Err(err),
                }
            })
        });
        let stream = |input, source| Error::Stream {
            container: name.to_owned(),
            program: exec.program().to_owned(),
            input,
            source,
        };
        match copied {
            Ok(()) => {}
            Err(Broken::Docker(source)) => return Err(api("POST /exec/{id}/start")(source)),
            Err(Broken::Input(source)) => return Err(stream(true, source)),
            Err(Broken::Output(source)) => return Err(stream(false, source)),
        }
        status.exit_code = self.runtime.block_on(self.exit_code(&id))?;
        Ok(status)
    }

    /// Create and start an exec in container `name`: its ID, output and input.
    async fn start_exec(
        &self,
        name: &str,
        config: models::ExecConfig,
    ) -> Result<(String, Output, Input), Error> {
        let exec = self
            .client
            .create_exec(name, config)
            .await
            .map_err(|e| not_found(name, e, "POST /containers/{id}/exec"))?;
        let options = StartExecOptions {
            output_capacity: Some(CHUNK),
            ..Default::default()
        };
        let started = self
            .client
            .start_exec(&exec.id, Some(options))
            .await
            .map_err(api("POST /exec/{id}/start"))?;
        match started {
            StartExecResults::Attached { output, input } => Ok((exec.id, output, input)),
            // bollard detaches only when asked to.
            StartExecResults::Detached => unreachable!("an exec started attached is detached"),
        }
    }

    /// The exit code of exec `id`, whose output has ended; `-1` when Docker records none.
    async fn exit_code(&self, id: &str) -> Result<i64, Error> {
        // Docker closes the output once it has recorded the exit; ask again for a moment in
        // case an older daemon does it the other way round.
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            let inspected = self
                .client
                .inspect_exec(id)
                .await
                .map_err(api("GET /exec/{id}/json"))?;
            if inspected.running != Some(true) || Instant::now() > deadline {
                return Ok(inspected.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

/// Read `reader` in pieces into `tx`, until its end (dropping `tx` then is the EOF), a read
/// error (sent on), or a receiver gone (the exec has ended).
fn read_input(reader: &mut (dyn Read + Send), tx: &mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        let mut piece = vec![0; CHUNK];
        let read = match reader.read(&mut piece) {
            Ok(0) => return,
            Ok(n) => {
                piece.truncate(n);
                Ok(Bytes::from(piece))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = read.is_err();
        if tx.blocking_send(read).is_err() || failed {
            return;
        }
    }
}

/// Send the pieces of input into the exec, then close its standard input. Ends with an
/// error only when reading the input failed; when Docker takes no more (the command has
/// ended), the output says how it ended.
async fn copy_input(
    mut pieces: mpsc::Receiver<std::io::Result<Bytes>>,
    mut input: Input,
) -> Result<(), Broken> {
    while let Some(piece) = pieces.recv().await {
        let piece = piece.map_err(Broken::Input)?;
        if input.write_all(&piece).await.is_err() {
            return Ok(());
        }
    }
    // Half-closing the connection is the EOF Docker passes on to the command.
    let _ = input.shutdown().await;
    Ok(())
}

/// Copy the exec's standard output into `stdout` as it comes, and the end of its standard
/// error into `status`, until the command ends.
async fn copy_output(
    mut output: Output,
    stdout: &mut (dyn Write + Send),
    status: &mut ExecStatus,
) -> Result<(), Broken> {
    while let Some(frame) = output.next().await {
        match frame.map_err(Broken::Docker)? {
            LogOutput::StdErr { message } => status.push_stderr(&message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                // A blocking write, on the thread that waits for the exec: a slow consumer
                // slows the command down rather than filling memory.
                stdout.write_all(&message).map_err(Broken::Output)?;
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    stdout.flush().map_err(Broken::Output)
}
