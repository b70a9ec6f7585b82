//! A container's output: its logs, followed or not, cut into lines.

use std::ops::ControlFlow;

use bollard::query_parameters as query;
use futures_util::StreamExt;

use super::containers::not_found;
use super::Docker;
use crate::types::*;
use crate::Error;

impl Docker {
    pub(super) fn follow_logs(
        &self,
        name: &str,
        options: LogOptions,
        sink: &mut dyn FnMut(LogLine) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let tail = options.tail.map_or("all".to_owned(), |n| n.to_string());
        let query = query::LogsOptionsBuilder::default()
            .follow(options.follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        self.runtime.block_on(async {
            let mut stream = self.client.logs(name, Some(query));
            let mut lines = Lines::default();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| not_found(name, e, "GET /containers/{id}/logs"))?;
                for line in lines.push(chunk) {
                    if sink(line).is_break() {
                        return Ok(());
                    }
                }
            }
            for line in lines.finish() {
                if sink(line).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// The longest piece of output held while waiting for the end of its line.
const MAX_LINE: usize = 64 * 1024;

/// Log chunks cut into lines, each stream apart (a frame may hold part of a line).
#[derive(Default)]
struct Lines {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Lines {
    fn push(&mut self, chunk: bollard::container::LogOutput) -> Vec<LogLine> {
        use bollard::container::LogOutput;
        let (stream, buffer, bytes) = match &chunk {
            LogOutput::StdErr { message } => (Stream::Stderr, &mut self.stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (Stream::Stdout, &mut self.stdout, message)
            }
            LogOutput::StdIn { .. } => return Vec::new(),
        };
        buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(LogLine {
                stream,
                text: String::from_utf8_lossy(&line[..end])
                    .trim_end_matches('\r')
                    .to_owned(),
            });
        }
        // Output that never ends a line (progress drawn with `\r`, binary data) is passed
        // on in pieces rather than held without bound.
        if buffer.len() >= MAX_LINE {
            let piece: Vec<u8> = std::mem::take(buffer);
            lines.push(LogLine {
                stream,
                text: String::from_utf8_lossy(&piece).into_owned(),
            });
        }
        lines
    }

    fn finish(self) -> Vec<LogLine> {
        [(Stream::Stdout, self.stdout), (Stream::Stderr, self.stderr)]
            .into_iter()
            .filter(|(_, rest)| !rest.is_empty())
            .map(|(stream, rest)| LogLine {
                stream,
                text: String::from_utf8_lossy(&rest).into_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_frames_are_cut_into_lines() {
        use bollard::container::LogOutput;
        let mut lines = Lines::default();
        let out = |s: &str| LogOutput::StdOut {
            message: s.as_bytes().to_vec().into(),
        };
        assert!(lines.push(out("hel")).is_empty());
        let got = lines.push(out("lo\nworld\r\nrest"));
        assert_eq!(
            got.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["hello", "world"]
        );
        assert_eq!(lines.finish()[0].text, "rest");
    }
}
