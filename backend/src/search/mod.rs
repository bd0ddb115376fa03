//! Full-text search of agents (`GET /api/agents?q=…`): by their prompt and the text of their messages,
//! on SQLite with FTS5 and on PostgreSQL with its built-in full text. What a query means
//! ([`query`]), what text is indexed and how it becomes words ([`text`]), and the task that keeps the
//! index up to date behind the persistence actor ([`indexer`]). The SQL of both databases is in
//! [`crate::store::search`]. docs/search.md says what a user sees.

pub mod indexer;
pub mod query;
pub mod text;
