//! A search query as the user typed it, read as plain words: nothing in it is syntax. The words are
//! then written in each database's own query language ([`SearchQuery::fts5_terms`],
//! [`SearchQuery::tsquery_terms`]) with every word quoted, so no character a user types (`"`, `*`, `-`,
//! `NEAR(`, `:`, `(`, `AND`) can make a query the database refuses.

use super::text::words;

/// The longest query accepted, in bytes: a search box's worth of words, far from a URL's limit.
pub const MAX_QUERY_BYTES: usize = 500;

/// The most words a query may hold: each is one lookup in the index.
pub const MAX_QUERY_WORDS: usize = 16;

/// Why a query is refused (400 `invalid_query`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the search query is {0} bytes; at most {MAX_QUERY_BYTES} are accepted")]
    TooLong(usize),
    #[error("the search query has {0} words; at most {MAX_QUERY_WORDS} are accepted")]
    TooManyWords(usize),
}

/// The words every result must contain (anywhere in the agent's prompt or messages); the last one
/// may be the beginning of a word when the query ends inside it (the user is still typing it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
    last_is_prefix: bool,
}

impl SearchQuery {
    /// Reads `raw` as words; repeated words count once.
    pub fn parse(raw: &str) -> Result<SearchQuery, QueryError> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong(raw.len()));
        }
        let mut found: Vec<String> = Vec::new();
        for word in words(raw) {
            if !found.contains(&word) {
                found.push(word);
            }
        }
        if found.len() > MAX_QUERY_WORDS {
            return Err(QueryError::TooManyWords(found.len()));
        }
        let last_is_prefix = raw.chars().next_back().is_some_and(char::is_alphanumeric);
        Ok(SearchQuery {
            words: found,
            last_is_prefix,
        })
    }

    /// The query's words, lower-case, in order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Whether there is nothing to look for (the query held no letter or digit): nothing matches.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether the last word is matched as the beginning of a word.
    pub fn last_is_prefix(&self) -> bool {
        self.last_is_prefix
    }

    fn is_prefix(&self, i: usize) -> bool {
        self.last_is_prefix && i + 1 == self.words.len()
    }

    /// One FTS5 `MATCH` expression per word: the word as a quoted string (`"` doubled), `*` after the
    /// last one when it is a prefix.
    pub fn fts5_terms(&self) -> Vec<String> {
        (0..self.words.len())
            .map(|i| {
                let quoted = format!("\"{}\"", self.words[i].replace('"', "\"\""));
                if self.is_prefix(i) {
                    quoted + "*"
                } else {
                    quoted
                }
            })
            .collect()
    }

    /// One PostgreSQL `tsquery` (as text, cast with `::tsquery`, which takes lexemes as written) per
    /// word: the word as a quoted lexeme (`'` and `\` escaped), `:*` after the last one when it is a
    /// prefix.
    pub fn tsquery_terms(&self) -> Vec<String> {
        (0..self.words.len())
            .map(|i| {
                let escaped = self.words[i].replace('\\', "\\\\").replace('\'', "''");
                if self.is_prefix(i) {
                    format!("'{escaped}':*")
                } else {
                    format!("'{escaped}'")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> SearchQuery {
        SearchQuery::parse(raw).expect("a valid query")
    }

    #[test]
    fn words_are_lower_case_and_the_last_is_a_prefix_while_it_is_being_typed() {
        let q = parse("Durable PIPE");
        assert_eq!(q.words(), ["durable", "pipe"]);
        assert_eq!(q.fts5_terms(), ["\"durable\"", "\"pipe\"*"]);
        assert_eq!(q.tsquery_terms(), ["'durable'", "'pipe':*"]);
        let done = parse("durable pipe ");
        assert_eq!(done.fts5_terms(), ["\"durable\"", "\"pipe\""]);
        assert_eq!(done.tsquery_terms(), ["'durable'", "'pipe'"]);
    }

    #[test]
    fn query_syntax_characters_are_not_syntax() {
        for raw in [
            "\"",
            "\"unbalanced",
            "*",
            "-x",
            "NEAR(a b)",
            "a:b",
            "(((",
            "a AND OR NOT b",
            "col:word",
            "'; DROP TABLE agents; --",
            "\\",
            "🦀 emoji",
        ] {
            let q = parse(raw);
            for term in q.fts5_terms() {
                // Every term is one quoted string, optionally followed by `*`.
                let inner = term.trim_end_matches('*');
                assert!(
                    inner.starts_with('"') && inner.ends_with('"'),
                    "{raw}: {term}"
                );
                assert!(!inner[1..inner.len() - 1].contains('"'), "{raw}: {term}");
            }
            for term in q.tsquery_terms() {
                let inner = term.trim_end_matches(":*");
                assert!(
                    inner.starts_with('\'') && inner.ends_with('\''),
                    "{raw}: {term}"
                );
            }
        }
        assert_eq!(parse("NEAR(a b)").words(), ["near", "a", "b"]);
        assert_eq!(parse("a AND OR b").words(), ["a", "and", "or", "b"]);
        assert!(parse("\"*-:(").is_empty());
        assert!(parse("🦀").is_empty());
    }

    #[test]
    fn repeated_words_count_once() {
        assert_eq!(parse("a b a B").words(), ["a", "b"]);
    }

    #[test]
    fn long_queries_are_refused() {
        let long = "x".repeat(MAX_QUERY_BYTES + 1);
        assert_eq!(
            SearchQuery::parse(&long),
            Err(QueryError::TooLong(MAX_QUERY_BYTES + 1))
        );
        let many: Vec<String> = (0..=MAX_QUERY_WORDS).map(|i| format!("w{i}")).collect();
        assert_eq!(
            SearchQuery::parse(&many.join(" ")),
            Err(QueryError::TooManyWords(MAX_QUERY_WORDS + 1))
        );
        assert!(SearchQuery::parse(&"x ".repeat(MAX_QUERY_WORDS)).is_ok());
    }
}
