//! Parallel gzip, pigz style, with output that does not depend on the number of threads.
//!
//! The input is cut into fixed 128 KiB chunks. Each chunk is deflated on a worker as raw
//! deflate, primed with the last 32 KiB of the previous chunk as dictionary (so the ratio stays
//! close to single-stream gzip), and ended with a sync flush (byte-aligned, not final); the
//! last chunk is ended with a final block. Concatenated in order they form one deflate stream
//! (RFC 1951), wrapped in the same fixed gzip header and a CRC-32/ISIZE trailer (RFC 1952)
//! computed on the writing thread. Bytes depend only on the data, the level and the chunk
//! size. At most `2 × threads + 1` chunks are in flight, so memory is bounded.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

const CHUNK: usize = 128 * 1024;
const WINDOW: usize = 32 * 1024;

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

type Done = (u64, io::Result<Vec<u8>>);

pub(crate) struct ParallelGzEncoder<W: Write> {
    /// `None` only once `finish` has taken it.
    out: Option<W>,
    chunk: Vec<u8>,
    dict: Vec<u8>,
    crc: flate2::Crc,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    next_seq: u64,
    next_out: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    in_flight: usize,
    max_in_flight: usize,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// Start a gzip stream on `out`: `header` is the 10-byte RFC 1952 header to write.
    pub fn new(out: W, level: u32, header: [u8; 10]) -> io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(out, level, header, threads)
    }

    fn with_threads(mut out: W, level: u32, header: [u8; 10], threads: usize) -> io::Result<Self> {
        out.write_all(&header)?;
        let max_in_flight = 2 * threads + 1;
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(max_in_flight);
        let (done_tx, done) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                std::thread::spawn(move || worker(level, &job_rx, &done_tx))
            })
            .collect();
        Ok(ParallelGzEncoder {
            out: Some(out),
            chunk: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            crc: flate2::Crc::new(),
            jobs: Some(jobs),
            done,
            workers,
            next_seq: 0,
            next_out: 0,
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight,
        })
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect(true)?;
        }
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        let next_dict = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let job = Job {
            seq: self.next_seq,
            data,
            dict,
            last,
        };
        let sender = self.jobs.as_ref().ok_or_else(stopped)?;
        sender.send(job).map_err(|_| stopped())?;
        self.next_seq += 1;
        self.in_flight += 1;
        self.collect(false)
    }

    /// Write out finished chunks in order; wait for one first when `block`.
    fn collect(&mut self, block: bool) -> io::Result<()> {
        if block {
            let (seq, result) = self.done.recv().map_err(|_| stopped())?;
            self.pending.insert(seq, result?);
        }
        while let Ok((seq, result)) = self.done.try_recv() {
            self.pending.insert(seq, result?);
        }
        while let Some(bytes) = self.pending.remove(&self.next_out) {
            self.out.as_mut().ok_or_else(stopped)?.write_all(&bytes)?;
            self.next_out += 1;
            self.in_flight -= 1;
        }
        Ok(())
    }

    /// Compress what is left, write the trailer and give back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.in_flight > 0 {
            self.collect(true)?;
        }
        let mut trailer = self.crc.sum().to_le_bytes().to_vec();
        trailer.extend_from_slice(&self.crc.amount().to_le_bytes());
        let mut out = self.out.take().ok_or_else(stopped)?;
        out.write_all(&trailer)?;
        self.stop_workers();
        Ok(out)
    }

    fn stop_workers(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl<W: Write> Drop for ParallelGzEncoder<W> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunk boundaries are part of the output: flushing never cuts a chunk short.
        self.out.as_mut().ok_or_else(stopped)?.flush()
    }
}

fn stopped() -> io::Error {
    io::Error::other("parallel gzip workers stopped")
}

fn worker(level: u32, jobs: &Mutex<Receiver<Job>>, done: &mpsc::Sender<Done>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        // A fresh compressor per chunk: a reset one kept state from the chunk it compressed
        // before (seen as different bytes from run to run, since which worker gets which chunk
        // varies), and the output must depend on nothing but the data.
        let mut compress = Compress::new(flate2::Compression::new(level), false);
        let result = deflate_chunk(&mut compress, &job);
        if done.send((job.seq, result)).is_err() {
            return;
        }
    }
}

fn deflate_chunk(compress: &mut Compress, job: &Job) -> io::Result<Vec<u8>> {
    if !job.dict.is_empty() {
        compress
            .set_dictionary(&job.dict)
            .map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    let start_in = compress.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = (compress.total_in() - start_in) as usize;
        let status = compress
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = (compress.total_in() - start_in) as usize == job.data.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A flush is complete once the compressor stops filling the output space.
            _ if !job.last && all_in && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn compress_with(data: &[u8], threads: usize) -> Vec<u8> {
        let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        let mut e = ParallelGzEncoder::with_threads(Vec::new(), 6, header, threads).unwrap();
        for piece in data.chunks(10_000) {
            e.write_all(piece).unwrap();
        }
        e.finish().unwrap()
    }

    fn compress(data: &[u8]) -> Vec<u8> {
        compress_with(data, 2)
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let mut data = Vec::new();
        let mut x: u32 = 1;
        for i in 0..(CHUNK * 5 + 123) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.push(if i % 4 == 0 {
                (x >> 16) as u8
            } else {
                b'a' + (i % 7) as u8
            });
        }
        for input in [&data[..], b"", b"tiny", &data[..CHUNK]] {
            let a = compress(input);
            assert_eq!(a, compress(input));
            assert_eq!(a, compress_with(input, 1), "same bytes on one thread");
            assert_eq!(a, compress_with(input, 5), "same bytes on five threads");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&a[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input);
        }
    }
}
