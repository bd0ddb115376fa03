//! Search (`GET /api/agents?q=…`): agents found by their prompt, by words only their streamed tokens
//! hold, by follow-ups; newest first, paged; query syntax characters taken as text; purged agents gone;
//! the index kept across a restart; on PostgreSQL, indexed once whichever instance stored the messages.
//!
//! The index follows the store within about a second, so every test first waits until a word it
//! expects is found, and only then checks what must not be.

use std::time::Duration;

use agentstream_testkit::{assert_error, TestDir, TestServer, TIMEOUT};
use agentstream_wire::{Agent, AgentMatch, SyntheticConfig};
use uuid::Uuid;

use crate::SERVER;

/// `GET /api/agents?q=<q>` plus `extra` query pairs; the raw response.
async fn search(app: &TestServer, q: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut pairs = vec![("q", q)];
    pairs.extend_from_slice(extra);
    app.client
        .get(app.url("/api/agents"))
        .query(&pairs)
        .send()
        .await
        .expect("GET /api/agents?q=")
}

/// The results of `q` (which must answer 200).
async fn found(app: &TestServer, q: &str, extra: &[(&str, &str)]) -> Vec<AgentMatch> {
    let response = search(app, q, extra).await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "q={q:?}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("q={q:?}: {e}: {text}"))
}

fn ids(results: &[AgentMatch]) -> Vec<Uuid> {
    results.iter().map(|m| m.agent.id).collect()
}

/// Waits until `q` finds exactly `expected`, in this order (the index catches up within a second).
async fn wait_found(app: &TestServer, q: &str, expected: &[Uuid]) -> Vec<AgentMatch> {
    let mut last = Vec::new();
    let waited = tokio::time::timeout(TIMEOUT, async {
        loop {
            last = found(app, q, &[]).await;
            if ids(&last) == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "q={q:?}: expected {expected:?}, found {:?}",
        ids(&last)
    );
    last
}

/// A synthetic agent with this prompt answering `tokens` tokens at once. Its answer cycles through
/// "Streaming every token through a durable pipeline: parsed, stored with its sequence number, then
/// broadcast to each subscriber in order.": with 3 tokens it never says "durable" nor "subscriber".
async fn launch(app: &TestServer, prompt: &str, tokens: u64) -> Agent {
    launch_paced(app, prompt, tokens, 0).await
}

/// [`launch`], a token every `interval_ms`.
async fn launch_paced(app: &TestServer, prompt: &str, tokens: u64, interval_ms: u64) -> Agent {
    let configuration = SyntheticConfig {
        tokens: Some(tokens),
        interval_ms: Some(interval_ms),
        ..SyntheticConfig::default()
    };
    app.try_launch_synthetic(prompt, &configuration)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn agents_are_found_by_prompt_by_words_only_their_streamed_tokens_hold_and_by_follow_ups() {
    let app = TestServer::spawn(SERVER).await;
    let long = launch(&app, "Plan the kangaroo migration", 20).await;
    let short = launch(&app, "Dig a wombat burrow", 3).await;
    app.wait_finished(long.id).await;
    app.wait_finished(short.id).await;

    let by_prompt = wait_found(&app, "kangaroo", &[long.id]).await;
    assert_eq!(
        by_prompt[0].agent,
        app.agent(long.id).await,
        "the list's agent JSON"
    );
    assert_eq!(
        by_prompt[0]
            .matched
            .as_deref()
            .map(|m| m.contains("kangaroo")),
        Some(true),
        "{by_prompt:?}"
    );
    // "subscriber" is only in the long agent's 18th token.
    let by_token = wait_found(&app, "subscriber", &[long.id]).await;
    let snippet = by_token[0].matched.clone().unwrap_or_default();
    assert!(snippet.contains("each subscriber in order"), "{snippet}");
    wait_found(&app, "WOMBAT", &[short.id]).await;
    // Every word must be in the agent, wherever: its prompt and its answer.
    wait_found(&app, "wombat streaming", &[short.id]).await;
    assert!(found(&app, "wombat durable", &[]).await.is_empty());
    // The last word is a prefix while it is being typed; a space after it makes it whole.
    wait_found(&app, "kanga", &[long.id]).await;
    assert!(found(&app, "kanga ", &[]).await.is_empty());
    wait_found(&app, "stream", &[short.id, long.id]).await;

    // A follow-up is found once it is stored, and its answer's words too; whatever characters the
    // text holds around a word (quotes, a backslash, a line break, an emoji) leave it findable.
    let follow_up = app
        .send(
            short.id,
            "now mention the \"platypus\" \\ of the café\n🦆 near {\"eventType\":\"x\"}",
        )
        .await;
    app.wait_answer(short.id, &follow_up).await;
    wait_found(&app, "platypus", &[short.id]).await;
    wait_found(&app, "café", &[short.id]).await;
    wait_found(&app, "near eventtype", &[short.id]).await;
    app.assert_healthy().await;
}

#[tokio::test]
async fn results_are_newest_first_and_paged_with_limit_and_before() {
    let app = TestServer::spawn(SERVER).await;
    let mut agents = Vec::new();
    for i in 0..5 {
        agents.push(launch(&app, &format!("ocelot number {i}"), 1).await.id);
        // Distinct creation times: the order is the list's, newest first.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    launch(&app, "an unrelated lynx", 1).await;
    agents.reverse();
    wait_found(&app, "ocelot", &agents).await;

    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut extra = vec![("limit", "2")];
        if let Some(before) = &before {
            extra.push(("before", before.as_str()));
        }
        let page = found(&app, "ocelot", &extra).await;
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        before = page.last().map(|m| m.agent.id.to_string());
        paged.extend(ids(&page));
    }
    assert_eq!(paged, agents, "the pages, in order, are the whole result");

    for limit in ["0", "101", "x", "-1"] {
        assert_error(
            search(&app, "ocelot", &[("limit", limit)]).await,
            400,
            "invalid_limit",
        )
        .await;
    }
    assert_error(
        search(&app, "ocelot", &[("before", "nope")]).await,
        400,
        "invalid_id",
    )
    .await;
    let unknown = Uuid::new_v4().to_string();
    assert_error(
        search(&app, "ocelot", &[("before", &unknown)]).await,
        400,
        "invalid_query",
    )
    .await;
    // Without a query (or a blank one), the list is what it always was: every agent, unpaged.
    let all: Vec<Agent> = app.get_json("/api/agents").await;
    assert_eq!(all.len(), 6);
    for blank in [
        "/api/agents?q=",
        "/api/agents?q=%20%20",
        "/api/agents?limit=1",
    ] {
        let listed: Vec<Agent> = app.get_json(blank).await;
        assert_eq!(listed, all, "{blank}");
    }
}

#[tokio::test]
async fn query_syntax_characters_are_text_and_never_an_error() {
    let app = TestServer::spawn(SERVER).await;
    let agent = launch(
        &app,
        r#"say "hello" to NEAR(col:x) - * the crab 🦀 AND OR $HOME x+y=z 🦀emoji"#,
        1,
    )
    .await;
    wait_found(&app, "crab", &[agent.id]).await;
    let finds = [
        "\"hello\"",
        "\"hello",
        "hello\"",
        "NEAR(",
        "NEAR(col:x)",
        "col:x",
        "-crab",
        "crab*",
        "crab -hello",
        "AND OR",
        "(crab",
        "crab 🦀",
        "🦀crab",
        "say AND hello OR",
        // Symbols separate words on both databases.
        "home",
        "$HOME",
        "y",
        "z=x",
        "emoji",
    ];
    for q in finds {
        assert_eq!(ids(&found(&app, q, &[]).await), [agent.id], "q={q:?}");
    }
    let nothing = [
        "\"",
        "\"unbalanced",
        "*",
        "-",
        ":",
        "(",
        ")",
        "NOT",
        "crab NOT",
        "🦀",
        "'; DROP TABLE agents; --",
        "\\",
        "%_",
        "a\u{0}b",
        "\u{FFFD}",
        "x:*",
        "!&|<->",
    ];
    for q in nothing {
        let results = found(&app, q, &[]).await;
        assert!(
            results.iter().all(|m| m.agent.id == agent.id),
            "q={q:?}: {results:?}"
        );
        let words = q.chars().any(char::is_alphanumeric);
        assert!(words || results.is_empty(), "q={q:?}: no word, no result");
    }
    // Too long to be a search: 400 in the error form, not a 5xx.
    let long = "crab ".repeat(2_000);
    let refused = assert_error(search(&app, &long, &[]).await, 400, "invalid_query").await;
    assert!(refused.message.contains("500"), "{}", refused.message);
    let many: Vec<String> = (0..17).map(|i| format!("w{i}")).collect();
    assert_error(
        search(&app, &many.join(" "), &[]).await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(ids(&found(&app, "crab", &[]).await), [agent.id]);
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_purged_agent_disappears_from_results_and_its_index_rows_and_a_terminated_one_stays() {
    let dir = TestDir::new();
    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let purged = launch(&app, "the lemur that is purged", 1).await;
    let kept = launch(&app, "the lemur that is terminated", 1).await;
    let running = launch_paced(&app, "the lemur still running", 100_000, 5).await;
    app.wait_finished(purged.id).await;
    wait_found(&app, "lemur", &[running.id, kept.id, purged.id]).await;

    assert_eq!(app.delete_agent(purged.id, true).await.status(), 204);
    // At once: results are agents that exist.
    assert_eq!(ids(&found(&app, "lemur", &[]).await), [running.id, kept.id]);
    assert_eq!(app.delete_agent(kept.id, false).await.status(), 204);
    assert_eq!(app.delete_agent(running.id, true).await.status(), 204);
    assert_eq!(ids(&found(&app, "lemur", &[]).await), [kept.id]);
    assert!(found(&app, "purged", &[]).await.is_empty());

    // Its index rows went with it ("purged" was in its prompt only).
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(dir.database_url())
        .await
        .expect("connect");
    let backend = db.get_database_backend();
    let count = |sql: String| {
        let db = &db;
        async move {
            let row = db
                .query_one(sea_orm::Statement::from_string(backend, sql))
                .await
                .expect("count")
                .expect("a row");
            row.try_get_by_index::<i64>(0).expect("a number")
        }
    };
    for gone in [purged.id, running.id] {
        let sql = format!("SELECT COUNT(*) FROM search_chunks WHERE agent_id = '{gone}'");
        assert_eq!(count(sql).await, 0);
        let sql = format!("SELECT COUNT(*) FROM search_cursors WHERE agent_id = '{gone}'");
        assert_eq!(count(sql).await, 0);
    }
    let in_index = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT COUNT(*) FROM search_chunks WHERE words @@ 'purged'::tsquery"
        }
        _ => "SELECT COUNT(*) FROM search_fts WHERE search_fts MATCH 'purged'",
    };
    assert_eq!(
        count(in_index.to_owned()).await,
        0,
        "the word left the index"
    );
    db.close().await.ok();
}

#[tokio::test]
async fn the_index_survives_a_restart_and_catches_up_with_what_was_stored_before_it() {
    let dir = TestDir::new();
    let mut app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let done = launch(&app, "the quokka is done", 3).await;
    wait_found(&app, "quokka", &[done.id]).await;
    // Killed mid-stream, maybe before its last tokens were indexed.
    let running = launch_paced(&app, "the numbat keeps talking", 100_000, 2).await;
    app.wait_messages(running.id, 60).await;
    app.kill().await;

    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    // What was indexed is there from the first query on.
    assert_eq!(ids(&found(&app, "quokka", &[]).await), [done.id]);
    // What was stored and not yet indexed is caught up with: "subscriber" is its 18th token.
    wait_found(&app, "numbat subscriber", &[running.id]).await;
    wait_found(&app, "subscriber", &[running.id]).await;
}

#[tokio::test]
async fn an_agent_is_found_from_every_instance_and_its_text_is_indexed_once() {
    let dir = TestDir::new();
    let a = TestServer::builder()
        .dir(&dir)
        .env("AGENTSTREAM__INSTANCE__ID", "a")
        .spawn(SERVER)
        .await;
    // On PostgreSQL a second instance indexes the same database (on SQLite, one instance does).
    let other = dir.same_database();
    let b = if agentstream_testkit::on_postgres("a second instance indexing the same database") {
        Some(
            TestServer::builder()
                .dir(&other)
                .env("AGENTSTREAM__INSTANCE__ID", "b")
                .spawn(SERVER)
                .await,
        )
    } else {
        None
    };
    let mut agents = Vec::new();
    for i in 0..10 {
        agents.push(launch(&a, &format!("echidna {i}"), 200).await.id);
    }
    for id in &agents {
        a.wait_finished(*id).await;
    }
    agents.reverse();
    let searcher = b.as_ref().unwrap_or(&a);
    wait_found(searcher, "echidna subscriber", &agents).await;
    wait_found(&a, "echidna subscriber", &agents).await;

    // Each agent's text is in the index once: its prompt once, each word of its answer as often as
    // it said it (200 tokens: "subscriber" 10 times).
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(dir.database_url())
        .await
        .expect("connect");
    for id in &agents {
        let rows = db
            .query_all(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT body FROM search_chunks WHERE agent_id = '{id}' ORDER BY id"),
            ))
            .await
            .expect("chunks");
        let text: String = rows
            .iter()
            .map(|r| r.try_get::<String>("", "body").expect("body"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(text.matches("echidna").count(), 1, "{id}: {text}");
        assert_eq!(text.matches("subscriber").count(), 10, "{id}: {text}");
    }
    db.close().await.ok();
}
