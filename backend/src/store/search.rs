//! The full-text index in SQL, for both databases: the search behind `GET /api/agents?q=`, and the
//! reads and writes of the indexer ([`crate::search::indexer`]). The schema is
//! `m20261202_000006_search`: `search_chunks` (an agent's text, a chunk per indexing pass; its words
//! indexed on SQLite by the FTS5 table `search_fts`, on PostgreSQL by its `words` tsvector) and
//! `search_cursors` (per agent, the last message indexed, and whether the agent was finished then).
//!
//! Statements use numbered parameters (`$1`), which both SQLite and PostgreSQL take.

use agentstream_wire::{AgentMatch, AgentStatus, EventType};
use entity::agent;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};

use super::agent_to_wire;
use crate::search::query::SearchQuery;
use crate::search::text::{lexemes, snippet, IndexedMessage};

/// Where a page of results starts: after the agent created at `created_at` with id `id` (the list's
/// order, newest first).
#[derive(Clone, Debug)]
pub struct Before {
    pub created_at: String,
    pub id: String,
}

/// The agents whose prompt or messages hold every word of `query`, newest first, at most `limit`,
/// after `before`; each with a snippet of where it matched.
pub async fn find_agents(
    db: &impl ConnectionTrait,
    query: &SearchQuery,
    before: Option<&Before>,
    limit: u64,
) -> Result<Vec<AgentMatch>, DbErr> {
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let terms = match backend {
        DbBackend::Postgres => query.tsquery_terms(),
        _ => query.fts5_terms(),
    };
    let mut values: Vec<Value> = Vec::new();
    let mut param = |v: Value| {
        values.push(v);
        format!("${}", values.len())
    };
    let mut with = Vec::new();
    let mut joins = String::new();
    for (i, term) in terms.into_iter().enumerate() {
        let p = param(term.into());
        let matching = match backend {
            DbBackend::Postgres => format!(
                "SELECT agent_id, MIN(id) AS chunk FROM search_chunks \
                 WHERE words @@ {p}::tsquery GROUP BY agent_id"
            ),
            _ => format!(
                "SELECT c.agent_id AS agent_id, MIN(c.id) AS chunk \
                 FROM search_fts JOIN search_chunks c ON c.id = search_fts.rowid \
                 WHERE search_fts MATCH {p} GROUP BY c.agent_id"
            ),
        };
        with.push(format!("m{i} AS ({matching})"));
        joins.push_str(&format!(" JOIN m{i} ON m{i}.agent_id = a.id"));
    }
    let mut sql = format!(
        "WITH {} SELECT a.*, m0.chunk AS search_chunk FROM agents a{joins}",
        with.join(", ")
    );
    if let Some(before) = before {
        let at = param(before.created_at.clone().into());
        let id = param(before.id.clone().into());
        sql.push_str(&format!(
            " WHERE a.created_at < {at} OR (a.created_at = {at} AND a.id < {id})"
        ));
    }
    let limit = param((limit as i64).into());
    sql.push_str(&format!(
        " ORDER BY a.created_at DESC, a.id DESC LIMIT {limit}"
    ));
    let rows = db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let chunk: i64 = row.try_get("", "search_chunk")?;
        found.push((agent::Model::from_query_result(&row, "")?, chunk));
    }
    let bodies = chunk_bodies(db, found.iter().map(|(_, c)| *c).collect()).await?;
    found
        .into_iter()
        .map(|(model, chunk)| {
            let matched = bodies
                .iter()
                .find(|(id, _)| *id == chunk)
                .and_then(|(_, body)| snippet(body, query.words(), query.last_is_prefix()));
            Ok(AgentMatch {
                agent: agent_to_wire(model)?,
                matched,
            })
        })
        .collect()
}

/// The text of the chunks `ids`.
async fn chunk_bodies(
    db: &impl ConnectionTrait,
    ids: Vec<i64>,
) -> Result<Vec<(i64, String)>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let params: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, body FROM search_chunks WHERE id IN ({})",
        params.join(", ")
    );
    let values: Vec<Value> = ids.into_iter().map(Value::from).collect();
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "body")?)))
        .collect()
}

/// An agent whose messages may not all be indexed yet.
#[derive(Clone, Debug)]
pub struct Unindexed {
    pub id: String,
    pub prompt: String,
    /// Its status when read: a finished agent writes nothing more until it is continued.
    pub finished: bool,
    /// What `settled` becomes once everything it stored is indexed (see [`unindexed_agents`]).
    pub marker: String,
    /// The last message indexed; `None`: the agent was never indexed (its prompt neither).
    pub indexed_seq: Option<i64>,
}

/// An agent's status and end as one text: it changes with every turn (a continued agent is `running`
/// again, then ends with a new `completed_at`), so an agent whose marker equals the one recorded when
/// it was last indexed has stored nothing since.
const MARKER_SQL: &str = "a.status || '|' || COALESCE(a.completed_at, '')";

/// The agents the index may lag behind, oldest first, at most `limit`: those never indexed, those
/// running (or indexed while running), and those that ran again since they were last indexed whole.
pub async fn unindexed_agents(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<Unindexed>, DbErr> {
    let sql = format!(
        "SELECT a.id, a.prompt, a.status, {MARKER_SQL} AS marker, c.indexed_seq \
         FROM agents a LEFT JOIN search_cursors c ON c.agent_id = a.id \
         WHERE c.settled IS NULL OR c.settled <> {MARKER_SQL} \
         ORDER BY a.created_at, a.id LIMIT $1"
    );
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [Value::from(limit as i64)],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let status: String = row.try_get("", "status")?;
            let finished = status
                .parse::<AgentStatus>()
                .is_ok_and(AgentStatus::is_terminal);
            Ok(Unindexed {
                id: row.try_get("", "id")?,
                prompt: row.try_get("", "prompt")?,
                finished,
                marker: row.try_get("", "marker")?,
                indexed_seq: row.try_get("", "indexed_seq")?,
            })
        })
        .collect()
}

/// The agent's messages after `after`, at most `limit`: their number, kind and text.
///
/// The database hands them over as one JSON array: a row each would cost a hand-over between the
/// driver's thread and ours per message (on SQLite, sqlx's worker thread sends every row through a
/// channel), which made reading several times dearer than everything else the indexer does. Of the
/// metadata only its start is read where it starts with the event type, as this server writes it.
pub async fn messages_after(
    db: &impl ConnectionTrait,
    agent_id: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<IndexedMessage>, DbErr> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "eventType", borrow, default)]
        event_type: Option<&'a str>,
    }
    let backend = db.get_database_backend();
    let aggregate = match backend {
        DbBackend::Postgres => {
            "json_agg(json_build_array(sequence_number, kind, content) ORDER BY sequence_number)::text"
        }
        _ => "json_group_array(json_array(sequence_number, kind, content))",
    };
    let sql = format!(
        "SELECT {aggregate} AS messages FROM (\
         SELECT sequence_number, content, \
         CASE WHEN substr(metadata, 1, 14) = '{{\"eventType\":\"' \
         THEN substr(metadata, 1, {KIND_PREFIX_CHARS}) ELSE metadata END AS kind \
         FROM agent_messages WHERE agent_id = $1 AND sequence_number > $2 \
         ORDER BY sequence_number LIMIT $3) AS page"
    );
    let row = db
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [agent_id.into(), after.into(), (limit as i64).into()],
        ))
        .await?;
    let Some(text) = row
        .map(|row| row.try_get::<Option<String>>("", "messages"))
        .transpose()?
        .flatten()
    else {
        return Ok(Vec::new());
    };
    // The metadata is escaped in the array (its quotes), so it cannot be borrowed from it.
    let page: Vec<(i64, Option<String>, String)> = serde_json::from_str(&text)
        .map_err(|e| DbErr::Custom(format!("the messages of {agent_id} as JSON: {e}")))?;
    let mut messages: Vec<IndexedMessage> = page
        .into_iter()
        .map(|(sequence_number, metadata, content)| {
            let event_type = metadata.as_deref().and_then(|m| {
                leading_event_type(m)
                    .or_else(|| serde_json::from_str::<Kind>(m).ok()?.event_type)?
                    .parse::<EventType>()
                    .ok()
            });
            IndexedMessage {
                sequence_number,
                event_type,
                content,
            }
        })
        .collect();
    // SQLite's aggregate keeps the page's order in practice, not by promise.
    messages.sort_by_key(|m| m.sequence_number);
    Ok(messages)
}

/// How much of a message's metadata is read when it starts with its event type: enough for the
/// longest event type's name.
const KIND_PREFIX_CHARS: usize = 64;

/// The event type of metadata written by this server, which puts `eventType` first: read without
/// parsing the rest (the indexer reads every message once; most are tokens). `None` when the text does
/// not start that way (then it is parsed).
fn leading_event_type(metadata: &str) -> Option<&str> {
    let rest = metadata.strip_prefix("{\"eventType\":\"")?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    (!name.contains('\\')).then_some(name)
}

/// A chunk of an agent's text, with the words the index gets of it (worked out before the write, so
/// that the write transaction only writes).
pub struct Chunk {
    pub body: String,
    /// Its distinct words, space-separated ([`lexemes`]).
    pub words: String,
}

impl Chunk {
    pub fn new(body: &str) -> Chunk {
        Chunk {
            body: body.to_owned(),
            words: lexemes(body).join(" "),
        }
    }
}

/// What one indexing step of an agent writes.
pub struct Step<'a> {
    pub agent_id: &'a str,
    /// The text to add, in chunks.
    pub chunks: &'a [Chunk],
    /// The cursor it read from (`None`: the agent had none) and the one it moves to.
    pub from: Option<i64>,
    pub to: i64,
    /// The agent's marker when everything it stored is now indexed, else `None`.
    pub settled: Option<&'a str>,
}

/// Writes `step` in `txn` (a transaction of the caller's): its chunks, then its cursor, moved only if
/// it still is where the step read from. `false` when it was not (another instance indexed the same
/// messages meanwhile): the caller rolls back, so nothing is indexed twice.
pub async fn write_step(txn: &impl ConnectionTrait, step: &Step<'_>) -> Result<bool, DbErr> {
    let backend = txn.get_database_backend();
    let cursor = match step.from {
        None => Statement::from_sql_and_values(
            backend,
            "INSERT INTO search_cursors (agent_id, indexed_seq, settled) VALUES ($1, $2, $3) \
             ON CONFLICT (agent_id) DO NOTHING",
            [
                step.agent_id.into(),
                step.to.into(),
                step.settled.map(str::to_owned).into(),
            ],
        ),
        Some(from) => Statement::from_sql_and_values(
            backend,
            "UPDATE search_cursors SET indexed_seq = $2, settled = $3 \
             WHERE agent_id = $1 AND indexed_seq = $4",
            [
                step.agent_id.into(),
                step.to.into(),
                step.settled.map(str::to_owned).into(),
                from.into(),
            ],
        ),
    };
    if txn.execute(cursor).await?.rows_affected() != 1 {
        return Ok(false);
    }
    for chunk in step.chunks {
        let insert = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                "INSERT INTO search_chunks (agent_id, body, words) \
                 VALUES ($1, $2, array_to_tsvector(string_to_array($3, ' ')))",
                [
                    step.agent_id.into(),
                    chunk.body.as_str().into(),
                    chunk.words.as_str().into(),
                ],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                "INSERT INTO search_chunks (agent_id, body) VALUES ($1, $2)",
                [step.agent_id.into(), chunk.body.as_str().into()],
            ),
        };
        let inserted = txn.execute(insert).await?;
        if backend == DbBackend::Sqlite {
            txn.execute(Statement::from_sql_and_values(
                backend,
                "INSERT INTO search_fts (rowid, words) VALUES ($1, $2)",
                [
                    (inserted.last_insert_id() as i64).into(),
                    chunk.words.as_str().into(),
                ],
            ))
            .await?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::leading_event_type;

    #[test]
    fn the_leading_event_type_is_read_without_parsing_and_anything_else_is_left_to_the_parser() {
        assert_eq!(
            leading_event_type(r#"{"eventType":"content_delta","blockIndex":0}"#),
            Some("content_delta")
        );
        assert_eq!(
            leading_event_type(r#"{"blockIndex":0,"eventType":"x"}"#),
            None
        );
        assert_eq!(leading_event_type(r#"{"eventType":"a\"b"}"#), None);
        assert_eq!(leading_event_type(r#"{"eventType": "spaced"}"#), None);
        assert_eq!(leading_event_type(""), None);
    }
}
