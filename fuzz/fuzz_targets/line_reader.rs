//! The bounded line reader of a child process's stdout (`runners::process::read_bounded_line`), on
//! arbitrary output, line limits and read-buffer sizes (so lines straddle buffer refills). It must
//! agree exactly with a plain reference: split at `\n`, a line over the limit becomes `Oversized` with
//! its length and its first `max` bytes, any other line is its bytes without a trailing `\r`.

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use agentstream::runners::process::read_bounded_line;
use agentstream::runners::RunnerEvent;
use libfuzzer_sys::fuzz_target;
use tokio::io::BufReader;

fuzz_target!(|input: (u8, u8, &[u8])| {
    let (max, capacity, data) = input;
    let max = usize::from(max);
    let capacity = usize::from(capacity).max(1);
    let mut reader = BufReader::with_capacity(capacity, data);
    let mut events = Vec::new();
    while let Some(event) = ready(read_bounded_line(&mut reader, max)).expect("reading a slice") {
        events.push(event);
    }
    assert_eq!(events, reference(data, max));
});

/// What the reader must return for `data`.
fn reference(data: &[u8], max: usize) -> Vec<RunnerEvent> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.is_empty() || data.ends_with(b"\n") {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|line| {
            if line.len() > max {
                RunnerEvent::Oversized {
                    len: line.len(),
                    head: String::from_utf8_lossy(&line[..max]).into_owned(),
                }
            } else {
                RunnerEvent::Bytes(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
            }
        })
        .collect()
}

/// Runs a future that never waits (reading a slice is always ready).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading a slice waited"),
    }
}
