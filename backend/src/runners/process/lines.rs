//! Reading a child process's stdout a line at a time, each line bounded: a process that prints a
//! gigabyte without a newline costs at most `max` bytes of memory. Fuzzed (`fuzz/`, `line_reader`).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::runners::RunnerEvent;

/// Reads one line without its newline, at most `max` bytes of it: a longer line becomes
/// [`RunnerEvent::Oversized`] carrying its first `max` bytes, and the rest is skipped. `None` at the end.
pub async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<RunnerEvent>> {
    let mut line: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if total == 0 {
                return Ok(None);
            }
            break;
        }
        let (part, found) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        total += part.len();
        let consumed = part.len() + usize::from(found);
        reader.consume(consumed);
        if found {
            break;
        }
    }
    if line.last() == Some(&b'\r') && total <= max {
        line.pop();
    }
    Ok(Some(if total > max {
        RunnerEvent::Oversized {
            len: total,
            head: String::from_utf8_lossy(&line).into_owned(),
        }
    } else {
        RunnerEvent::Bytes(line)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn lines(input: &[u8], max: usize) -> Vec<RunnerEvent> {
        let mut reader = BufReader::with_capacity(8, input);
        let mut out = Vec::new();
        while let Some(e) = read_bounded_line(&mut reader, max).await.unwrap() {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let got = lines(b"one\ntwo\r\n\nthree-is-long\nlast", 5).await;
        assert_eq!(
            got,
            vec![
                RunnerEvent::Bytes(b"one".to_vec()),
                RunnerEvent::Bytes(b"two".to_vec()),
                RunnerEvent::Bytes(Vec::new()),
                RunnerEvent::Oversized {
                    len: 13,
                    head: "three".into()
                },
                RunnerEvent::Bytes(b"last".to_vec()),
            ]
        );
    }
}
