//! What the index holds of an agent, and how text becomes words: pure functions, so that the indexer,
//! the query and the snippet agree on what a word is on both databases.
//!
//! A word is a maximal run of letters and digits, lower-cased: punctuation, spaces and symbols (emoji
//! too) separate words and are never searched. That is also what SQLite's `unicode61` tokenizer makes of
//! text, and on PostgreSQL the indexer hands these very words to the database as lexemes.

use std::collections::BTreeSet;

use agentstream_wire::EventType;

/// The words of `text`, lower-case, in order.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    word_spans(text).map(|(start, end)| text[start..end].to_lowercase())
}

/// The byte ranges of the words of `text`.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start: Option<usize> = None;
    let mut chars = text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')));
    std::iter::from_fn(move || {
        for (i, c) in chars.by_ref() {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    start = None;
                    return Some((s, i));
                }
                _ => {}
            }
        }
        None
    })
}

/// Longest word PostgreSQL's index gets, in bytes (its limit is 2047; longer runs are hashes and blobs,
/// not words anyone types).
const MAX_LEXEME_BYTES: usize = 200;

/// The distinct words of `text`, sorted: a chunk's lexemes on PostgreSQL.
pub fn lexemes(text: &str) -> Vec<String> {
    words(text)
        .filter(|w| w.len() <= MAX_LEXEME_BYTES)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// How a message's text joins the text before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// A piece of streamed text: glued to the piece before it, as the reader sees it.
    Piece,
    /// A message of its own: on a new line.
    Whole,
}

/// What is indexed of a message, by its `metadata.eventType`: what the conversation says (the answer's
/// text, the user's follow-ups, the tools called), not thinking, tool output, usage or the `result`
/// (the answer once more).
fn part(event: Option<EventType>) -> Option<Part> {
    match event? {
        EventType::ContentDelta => Some(Part::Piece),
        EventType::AssistantMessage
        | EventType::UserInput
        | EventType::UserMessage
        | EventType::ToolUse
        | EventType::PermissionRequest => Some(Part::Whole),
        _ => None,
    }
}

/// A stored message, as much of it as the indexer reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedMessage {
    pub sequence_number: i64,
    pub event_type: Option<EventType>,
    pub content: String,
}

/// Streamed text held back at most this long (bytes, or pieces) waiting for its word to end.
const MAX_PENDING_BYTES: usize = 4096;
const MAX_PENDING_PIECES: usize = 512;

/// The text to index from an agent's next messages, and the last message it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    pub text: String,
    /// The sequence number of the last message taken (indexed or skipped); `None`: none was.
    pub through: Option<i64>,
}

/// The text of `messages` (the agent's next ones, in order), after `prompt` when it is given (the first
/// time an agent is indexed). While the agent may still stream (`finished` false), streamed text that
/// ends inside a word is left for the next time (its word is not whole yet), unless it grew past
/// [`MAX_PENDING_BYTES`]: so a token boundary never splits a word in the index.
pub fn assemble(prompt: Option<&str>, messages: &[IndexedMessage], finished: bool) -> Assembled {
    let end = if finished {
        messages.len()
    } else {
        whole_words_end(messages)
    };
    let mut text = String::new();
    if let Some(prompt) = prompt {
        text.push_str(prompt);
    }
    let mut previous: Option<Part> = None;
    for m in &messages[..end] {
        let Some(part) = part(m.event_type) else {
            continue;
        };
        let glued = part == Part::Piece && previous == Some(Part::Piece);
        if !glued && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&m.content);
        previous = Some(part);
    }
    Assembled {
        text,
        through: end.checked_sub(1).map(|i| messages[i].sequence_number),
    }
}

/// How many of `messages` to take so that streamed text at their end stops at a word's end.
fn whole_words_end(messages: &[IndexedMessage]) -> usize {
    let run_start = messages
        .iter()
        .rposition(|m| part(m.event_type) != Some(Part::Piece))
        .map_or(0, |i| i + 1);
    if run_start == messages.len() {
        return messages.len();
    }
    let run = &messages[run_start..];
    let not_word = |c: Option<char>| c.is_some_and(|c| !c.is_alphanumeric());
    for j in (0..run.len()).rev() {
        let ends = not_word(run[j].content.chars().next_back());
        let next_starts = run
            .get(j + 1)
            .is_some_and(|n| not_word(n.content.chars().next()));
        if ends || next_starts {
            return run_start + j + 1;
        }
    }
    let pending: usize = run.iter().map(|m| m.content.len()).sum();
    if pending > MAX_PENDING_BYTES || run.len() > MAX_PENDING_PIECES {
        messages.len()
    } else {
        run_start
    }
}

/// Largest chunk of text one index row holds, in bytes.
pub const MAX_CHUNK_BYTES: usize = 32 * 1024;

/// `text` cut into chunks of at most [`MAX_CHUNK_BYTES`], at whitespace where there is some.
pub fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > MAX_CHUNK_BYTES {
        let mut cut = MAX_CHUNK_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(char::is_whitespace) {
            if space > 0 {
                cut = space;
            }
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.trim().is_empty() {
        out.push(rest);
    }
    out.retain(|c| !c.trim().is_empty());
    out
}

/// Characters of context a snippet shows on each side of the word it found.
const SNIPPET_CONTEXT: usize = 60;

/// A line of `body` around the first word the query asked for (`prefix`: the last query word may be
/// the start of a word), whitespace folded, `…` where it was cut; `None` when no word matches.
pub fn snippet(body: &str, query: &[String], last_is_prefix: bool) -> Option<String> {
    let matches = |word: &str| {
        query.iter().enumerate().any(|(i, q)| {
            word == q || (last_is_prefix && i + 1 == query.len() && word.starts_with(q.as_str()))
        })
    };
    let (start, end) = word_spans(body).find(|(s, e)| matches(&body[*s..*e].to_lowercase()))?;
    let before: Vec<(usize, char)> = body[..start].char_indices().collect();
    let from = before
        .len()
        .checked_sub(SNIPPET_CONTEXT)
        .map_or(0, |i| before[i].0);
    let to = body[end..]
        .char_indices()
        .nth(SNIPPET_CONTEXT)
        .map_or(body.len(), |(i, _)| end + i);
    let folded = body[from..to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.push_str(&folded);
    if to < body.len() {
        out.push('…');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(seq: i64, text: &str) -> IndexedMessage {
        IndexedMessage {
            sequence_number: seq,
            event_type: Some(EventType::ContentDelta),
            content: text.to_owned(),
        }
    }

    fn other(seq: i64, event: EventType, text: &str) -> IndexedMessage {
        IndexedMessage {
            sequence_number: seq,
            event_type: Some(event),
            content: text.to_owned(),
        }
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_lower_cased() {
        let found: Vec<String> = words("Hello, wörld! x2 — foo_bar 🦀crab 日本語 3.14").collect();
        assert_eq!(
            found,
            [
                "hello",
                "wörld",
                "x2",
                "foo",
                "bar",
                "crab",
                "日本語",
                "3",
                "14"
            ]
        );
        assert_eq!(words("").count(), 0);
        assert_eq!(words("  ,;: ").count(), 0);
    }

    #[test]
    fn lexemes_are_distinct_sorted_and_bounded() {
        let long = "y".repeat(MAX_LEXEME_BYTES + 1);
        assert_eq!(lexemes(&format!("b a B {long} a")), ["a", "b"]);
    }

    #[test]
    fn streamed_pieces_are_glued_and_other_messages_start_a_line() {
        let messages = [
            other(1, EventType::System, "init"),
            delta(2, "Hel"),
            delta(3, "lo wor"),
            delta(4, "ld."),
            other(5, EventType::MessageDelta, ""),
            other(6, EventType::UserInput, "and in French?"),
            other(7, EventType::ToolUse, "Bash"),
            other(8, EventType::Result, "Hello world."),
        ];
        let got = assemble(Some("the prompt"), &messages, false);
        assert_eq!(got.text, "the prompt\nHello world.\nand in French?\nBash");
        assert_eq!(got.through, Some(8));
    }

    #[test]
    fn a_word_still_being_streamed_waits_for_its_end() {
        // Messages are taken whole: the last one ends inside a word, and no message ends a word before.
        let messages = [delta(1, "Stream"), delta(2, "ing ev"), delta(3, "ery")];
        let got = assemble(None, &messages, false);
        assert_eq!(got.text, "");
        assert_eq!(got.through, None);
        // Once a piece after it starts with a space, the word is whole.
        let more = [
            delta(1, "Stream"),
            delta(2, "ing ev"),
            delta(3, "ery"),
            delta(4, " tok"),
        ];
        let got = assemble(None, &more, false);
        assert_eq!(got.text, "Streaming every");
        assert_eq!(got.through, Some(3));
        // A finished agent's text is taken whole.
        let done = assemble(None, &messages, true);
        assert_eq!(done.text, "Streaming every");
        assert_eq!(done.through, Some(3));
    }

    #[test]
    fn a_piece_that_starts_with_a_space_ends_the_word_before_it() {
        let messages = [delta(1, "one"), delta(2, " two")];
        let got = assemble(None, &messages, false);
        assert_eq!(got.text, "one");
        assert_eq!(got.through, Some(1));
    }

    #[test]
    fn nothing_is_taken_while_the_first_word_streams() {
        let got = assemble(None, &[delta(7, "wo"), delta(8, "rd")], false);
        assert_eq!(got.text, "");
        assert_eq!(got.through, None);
    }

    #[test]
    fn a_run_without_word_end_is_taken_once_it_is_long() {
        let blob = "x".repeat(MAX_PENDING_BYTES + 1);
        let got = assemble(None, &[delta(1, &blob)], false);
        assert_eq!(got.through, Some(1));
        let pieces: Vec<IndexedMessage> = (1..=MAX_PENDING_PIECES as i64 + 1)
            .map(|i| delta(i, ""))
            .collect();
        assert_eq!(
            assemble(None, &pieces, false).through,
            Some(MAX_PENDING_PIECES as i64 + 1)
        );
    }

    #[test]
    fn chunks_are_bounded_and_cut_at_whitespace() {
        let text = format!("{} {}", "a".repeat(MAX_CHUNK_BYTES - 10), "b".repeat(100));
        let got = chunks(&text);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|c| c.len() <= MAX_CHUNK_BYTES));
        assert_eq!(got.concat(), text);
        // No whitespace, multi-byte characters: cut at a character boundary.
        let wide = "é".repeat(MAX_CHUNK_BYTES);
        let got = chunks(&wide);
        assert!(got.iter().all(|c| c.len() <= MAX_CHUNK_BYTES));
        assert_eq!(got.concat(), wide);
        assert!(chunks("  \n ").is_empty());
    }

    #[test]
    fn a_snippet_shows_the_word_in_context() {
        let body = format!(
            "{} the Durable pipeline {}",
            "a ".repeat(100),
            "z ".repeat(100)
        );
        let got = snippet(&body, &["durable".to_owned()], false).expect("found");
        assert!(got.starts_with('…') && got.ends_with('…'), "{got}");
        assert!(got.contains("the Durable pipeline"), "{got}");
        assert!(got.chars().count() <= 2 * SNIPPET_CONTEXT + 10, "{got}");
        assert_eq!(
            snippet("short\n\ntext  here", &["te".to_owned()], true).as_deref(),
            Some("short text here")
        );
        assert_eq!(snippet("short text", &["te".to_owned()], false), None);
    }
}
