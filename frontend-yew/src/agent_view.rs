//! One agent, live: loads its history over REST, subscribes with `since` = the last sequence number it
//! has (again after every reconnect), deduplicates, fills gaps, and shows the transcript.
//!
//! Messages go into a store outside Yew's state (no clone per token); the view is re-rendered at most
//! once per animation frame, and then only the blocks whose version changed are diffed.
//!
//! Under the transcript, the composer (`composer.rs`) talks to the agent; what the server answers a
//! follow-up or a permission answer with (the stored message) goes into the same timeline as the stream.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use agentstream_wire::{
    Agent, AgentStatus, CompletionResult, ErrorBody, ErrorInfo, ServerEvent, StoredMessage,
};
use uuid::Uuid;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::api;
use crate::auth;
use crate::blocks::BlockView;
use crate::composer::Composer;
use crate::connection::Connection;
use crate::permission_card::card_element_id;
use crate::time;
use crate::timeline::{Pushed, Timeline};
use crate::transcript::{BlockRef, Transcript};
use crate::usage;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: Uuid,
    /// The agent as the list knows it (its status is kept live there).
    pub listed: Option<Agent>,
    pub conn: Connection,
    pub on_purged: Callback<Uuid>,
}

/// Everything known of the agent's stream.
#[derive(Default)]
struct Store {
    timeline: Timeline,
    transcript: Transcript,
    agent: Option<Agent>,
    status: Option<AgentStatus>,
    error: Option<ErrorInfo>,
    complete: Option<CompletionResult>,
    /// A gap fill is under way.
    filling: bool,
    /// A render is scheduled for the next frame.
    frame_pending: bool,
    /// The agent does not exist (any more).
    gone: bool,
}

type StoreRef = Rc<RefCell<Store>>;

impl Store {
    /// A new status from the stream. A turn that starts again (a follow-up to an ended agent) drops the
    /// last turn's end: its summary and its error.
    fn set_status(&mut self, status: AgentStatus) {
        if status.is_active() && self.status.is_some_and(AgentStatus::is_terminal) {
            self.complete = None;
            self.error = None;
        }
        self.status = Some(status);
    }
}

/// Re-renders at the next animation frame (once, however many messages arrive before it).
fn schedule(store: &StoreRef, force: &UseForceUpdateHandle) {
    if std::mem::replace(&mut store.borrow_mut().frame_pending, true) {
        return;
    }
    let (store, force) = (store.clone(), force.clone());
    let frame = Closure::once_into_js(move || {
        store.borrow_mut().frame_pending = false;
        force.force_update();
    });
    if let Some(window) = web_sys::window() {
        if window
            .request_animation_frame(frame.unchecked_ref())
            .is_err()
        {
            let _ = window
                .set_timeout_with_callback_and_timeout_and_arguments_0(frame.unchecked_ref(), 16);
        }
    }
}

/// Takes messages from anywhere (history, live, gap fill); fills a gap when one shows.
fn take(store: &StoreRef, force: &UseForceUpdateHandle, id: Uuid, messages: Vec<StoredMessage>) {
    let gap = {
        let mut s = store.borrow_mut();
        let s = &mut *s;
        let (applied, gap) = s.timeline.push_all(messages);
        for m in &applied {
            s.transcript.apply(m);
        }
        gap
    };
    if let Some(since) = gap {
        fill(store, force, id, since);
    }
    schedule(store, force);
}

/// Fetches what follows `since` (one fill at a time; it repeats while a gap remains).
fn fill(store: &StoreRef, force: &UseForceUpdateHandle, id: Uuid, since: i64) {
    if std::mem::replace(&mut store.borrow_mut().filling, true) {
        return;
    }
    let (store, force) = (store.clone(), force.clone());
    wasm_bindgen_futures::spawn_local(async move {
        let fetched = api::messages_since(id, since).await;
        store.borrow_mut().filling = false;
        match fetched {
            Ok(messages) => take(&store, &force, id, messages),
            Err(e) => store.borrow_mut().error = Some(e),
        }
    });
}

fn on_event(store: &StoreRef, force: &UseForceUpdateHandle, id: Uuid, event: ServerEvent) {
    match event {
        ServerEvent::AgentMessage(e) => {
            let pushed = store.borrow_mut().timeline.push(e.message);
            match pushed {
                Pushed::Applied(applied) => {
                    let mut s = store.borrow_mut();
                    for m in &applied {
                        s.transcript.apply(m);
                    }
                }
                Pushed::Gap { since } => fill(store, force, id, since),
                Pushed::Duplicate => {}
            }
        }
        ServerEvent::AgentComplete(c) => {
            let mut s = store.borrow_mut();
            s.status = Some(c.result.status);
            s.complete = Some(c.result);
        }
        ServerEvent::AgentError(e) => store.borrow_mut().error = Some(e.error),
        ServerEvent::AgentStatus(s) => {
            let mut store = store.borrow_mut();
            store.set_status(s.status);
            if let (Some(usage), Some(agent)) = (s.usage, store.agent.as_mut()) {
                agent.usage = usage;
            }
        }
        ServerEvent::Subscribed(s) => {
            if let Some(status) = s.status {
                store.borrow_mut().set_status(status);
            }
            if s.recovered == Some(false) {
                // The server lacks what we hold (our position is past its end): start over from its copy.
                {
                    let mut s = store.borrow_mut();
                    s.timeline = Timeline::default();
                    s.transcript = Transcript::default();
                }
                fill(store, force, id, 0);
            }
        }
        ServerEvent::AgentDeleted(d) if d.purged => store.borrow_mut().gone = true,
        ServerEvent::Error(e) if e.code == "agent_not_found" => store.borrow_mut().gone = true,
        _ => return,
    }
    schedule(store, force);
}

/// Saves `url` as `filename` with the API token: a link cannot send it (the server would answer 401),
/// so the file is fetched with it and saved from an object URL.
async fn download_with_token(
    url: String,
    filename: String,
    authorization: String,
) -> Result<(), ErrorInfo> {
    let local = |code: &str, message: String| ErrorInfo {
        code: code.to_owned(),
        message,
    };
    let response = gloo_net::http::Request::get(&url)
        .header("Authorization", &authorization)
        .send()
        .await
        .map_err(|e| local("network", format!("the server could not be reached: {e}")))?;
    if !response.ok() {
        let status = response.status();
        if status == 401 {
            auth::unauthorized();
        }
        return Err(match response.json::<ErrorBody>().await {
            Ok(body) => body.error,
            Err(_) => local("http_error", format!("the server answered {status}")),
        });
    }
    let failed = |_: wasm_bindgen::JsValue| {
        local("download_failed", format!("{filename} could not be saved"))
    };
    let promise = web_sys::Response::from(response).blob().map_err(failed)?;
    let blob: web_sys::Blob = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(failed)?
        .dyn_into()
        .map_err(failed)?;
    let object_url = web_sys::Url::create_object_url_with_blob(&blob).map_err(failed)?;
    let link = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("a").ok())
        .and_then(|a| a.dyn_into::<web_sys::HtmlElement>().ok())
        .ok_or_else(|| failed(wasm_bindgen::JsValue::NULL))?;
    link.set_attribute("href", &object_url).map_err(failed)?;
    link.set_attribute("download", &filename).map_err(failed)?;
    link.click();
    // The browser reads the blob after the click returns: it is let go a while later.
    gloo_timers::callback::Timeout::new(60_000, move || {
        let _ = web_sys::Url::revoke_object_url(&object_url);
    })
    .forget();
    Ok(())
}

#[function_component(AgentView)]
pub fn agent_view(props: &Props) -> Html {
    let store: StoreRef = use_mut_ref(Store::default);
    let force = use_force_update();
    let scroller = use_node_ref();
    let pinned = use_mut_ref(|| true);
    let show_jump = use_state(|| false);
    let acting = use_state(|| false);

    // Load, then watch; stop watching when leaving.
    {
        let (store, force, conn, id) = (store.clone(), force.clone(), props.conn.clone(), props.id);
        use_effect_with(id, move |_| {
            let alive = Rc::new(Cell::new(true));
            let (store2, force2, conn2, alive2) =
                (store.clone(), force.clone(), conn.clone(), alive.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::get_agent(id).await {
                    Ok(agent) => {
                        let mut s = store2.borrow_mut();
                        s.status = Some(agent.status);
                        s.error = agent.error.clone();
                        s.agent = Some(agent);
                    }
                    Err(e) if e.code == "agent_not_found" => store2.borrow_mut().gone = true,
                    Err(e) => store2.borrow_mut().error = Some(e),
                }
                if let Ok(history) = api::messages_since(id, 0).await {
                    take(&store2, &force2, id, history);
                }
                if alive2.get() {
                    let (s, f) = (store2.clone(), force2.clone());
                    let since_store = store2.clone();
                    conn2.join(
                        id,
                        move || since_store.borrow().timeline.last_sequence(),
                        move |event| on_event(&s, &f, id, event),
                    );
                }
                schedule(&store2, &force2);
            });
            move || {
                alive.set(false);
                conn.leave(id);
            }
        });
    }

    // Follow the bottom unless the reader scrolled up.
    {
        let (scroller, pinned) = (scroller.clone(), pinned.clone());
        use_effect(move || {
            if *pinned.borrow() {
                if let Some(el) = scroller.cast::<web_sys::Element>() {
                    el.set_scroll_top(el.scroll_height());
                }
            }
        });
    }
    let onscroll = {
        let (scroller, pinned, show_jump) = (scroller.clone(), pinned.clone(), show_jump.clone());
        Callback::from(move |_: Event| {
            if let Some(el) = scroller.cast::<web_sys::Element>() {
                let at_bottom = el.scroll_height() - el.scroll_top() - el.client_height() < 48;
                *pinned.borrow_mut() = at_bottom;
                if *show_jump == at_bottom {
                    show_jump.set(!at_bottom);
                }
            }
        })
    };
    let jump = {
        let (scroller, pinned, show_jump) = (scroller.clone(), pinned.clone(), show_jump.clone());
        Callback::from(move |_: MouseEvent| {
            *pinned.borrow_mut() = true;
            show_jump.set(false);
            if let Some(el) = scroller.cast::<web_sys::Element>() {
                el.set_scroll_top(el.scroll_height());
            }
        })
    };

    let terminate = {
        let (id, acting, store) = (props.id, acting.clone(), store.clone());
        Callback::from(move |_: MouseEvent| {
            acting.set(true);
            let (acting, store) = (acting.clone(), store.clone());
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = api::delete(id, false).await {
                    store.borrow_mut().error = Some(e);
                }
                acting.set(false);
            });
        })
    };
    let delete = {
        let (id, acting, store, on_purged) = (
            props.id,
            acting.clone(),
            store.clone(),
            props.on_purged.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let confirmed = web_sys::window()
                .and_then(|w| {
                    w.confirm_with_message("Delete this agent and its whole history?")
                        .ok()
                })
                .unwrap_or(false);
            if !confirmed {
                return;
            }
            acting.set(true);
            let (acting, store, on_purged) = (acting.clone(), store.clone(), on_purged.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::delete(id, true).await {
                    Ok(()) => on_purged.emit(id),
                    Err(e) => store.borrow_mut().error = Some(e),
                }
                acting.set(false);
            });
        })
    };

    // The conversation as a file: a plain link, unless the server has a token (a link cannot send it).
    let export = |format: &str, extension: &str| {
        let (store, force) = (store.clone(), force.clone());
        let url = format!("/api/agents/{}/export?format={format}", props.id);
        let filename = format!("agent-{}.{extension}", props.id);
        let (href, download) = (url.clone(), filename.clone());
        let onclick = Callback::from(move |e: MouseEvent| {
            let Some(authorization) = auth::authorization() else {
                return;
            };
            e.prevent_default();
            let (url, filename) = (url.clone(), filename.clone());
            let (store, force) = (store.clone(), force.clone());
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = download_with_token(url, filename, authorization).await {
                    store.borrow_mut().error = Some(e);
                    force.force_update();
                }
            });
        });
        (href, download, onclick)
    };
    let (markdown_href, markdown_file, markdown_click) = export("markdown", "md");
    let (jsonl_href, jsonl_file, jsonl_click) = export("jsonl", "jsonl");

    // A message the server answered a request of ours with (a follow-up, a permission answer): into
    // the timeline like the stream's (applied once, in order), and the view follows it.
    let on_message = {
        let (store, force, pinned, id) = (store.clone(), force.clone(), pinned.clone(), props.id);
        Callback::from(move |m: StoredMessage| {
            *pinned.borrow_mut() = true;
            take(&store, &force, id, vec![m]);
        })
    };

    let s = store.borrow();
    let agent = s.agent.clone().or_else(|| props.listed.clone());
    if s.gone {
        return html! {
            <section class="agent-view gone" data-testid="agent-view" data-agent-id={props.id.to_string()}>
                <div class="empty" data-testid="agent-gone"><h2>{ "This agent does not exist (any more)." }</h2></div>
                <Composer id={props.id} status={None::<AgentStatus>} gone={true} on_message={on_message} />
            </section>
        };
    }
    // The stream's status is the freshest (the room hears every change); the list's until it loads.
    let status = s.status.or(props.listed.as_ref().map(|a| a.status));
    let active = status.is_some_and(AgentStatus::is_active);
    let streaming = matches!(
        status,
        Some(AgentStatus::Initializing | AgentStatus::Running)
    );
    let waiting = (status == Some(AgentStatus::AwaitingPermission))
        .then(|| s.transcript.waiting_permission())
        .flatten();
    let show_card = Callback::from(|request_id: String| {
        let card = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(&card_element_id(&request_id)));
        if let Some(card) = card {
            card.scroll_into_view();
        }
    });
    let blocks: Vec<BlockRef> = s.transcript.blocks().to_vec();
    html! {
        <section class="agent-view" data-testid="agent-view" data-agent-id={props.id.to_string()}>
            <header class="agent-head">
                <div class="title">
                    <span class="type">{ agent.as_ref().map(|a| a.agent_type.as_str()).unwrap_or("agent") }</span>
                    <span class={classes!("badge", status.map(|s| s.as_str()))} data-testid="agent-status-badge">
                        { status.map(|s| s.as_str()).unwrap_or("loading") }
                    </span>
                    if let Some(c) = &s.complete {
                        <span class="done">{ format!("{} messages · {}", c.last_sequence, time::duration(c.duration_ms)) }</span>
                    }
                </div>
                <div class="actions">
                    if active {
                        <button data-testid="terminate" onclick={terminate} disabled={*acting}>{ "Terminate" }</button>
                    }
                    <span class="export" title="Download the conversation">
                        <a data-testid="export-markdown" href={markdown_href} download={markdown_file} onclick={markdown_click}>{ "Markdown" }</a>
                        { " / " }
                        <a data-testid="export-jsonl" href={jsonl_href} download={jsonl_file} onclick={jsonl_click}>{ "JSONL" }</a>
                    </span>
                    <button class="danger" data-testid="delete" onclick={delete} disabled={*acting}>{ "Delete" }</button>
                </div>
                if status == Some(AgentStatus::AwaitingPermission) {
                    <button class="awaiting" data-testid="awaiting-permission"
                            onclick={show_card.reform({ let id = waiting.as_ref().map(|w| w.0.clone()).unwrap_or_default(); move |_: MouseEvent| id.clone() })}>
                        { match &waiting {
                            Some((_, tool)) => format!("Waiting for your permission to run {tool}"),
                            None => "Waiting for a permission answer".to_owned(),
                        } }
                    </button>
                }
                if let Some(a) = &agent {
                    <p class="agent-prompt">{ a.prompt.clone() }</p>
                    <p class="times">
                        { format!("created {}", time::age(&a.created_at)) }
                        if let Some(m) = &a.model { { format!(" · {m}") } }
                        if let Some(sid) = &a.session_id { <span title="session id">{ format!(" · session {}", &sid[..sid.len().min(8)]) }</span> }
                    </p>
                    { usage_line(props.listed.as_ref().map_or(&a.usage, |l| &l.usage)) }
                }
            </header>
            if let Some(e) = &s.error {
                <div class="error-banner" data-testid="error-banner" role="alert"><strong>{ e.code.clone() }</strong>{ ": " }{ e.message.clone() }</div>
            }
            <div class="transcript-pane">
                <div class="transcript" data-testid="transcript" ref={scroller} onscroll={onscroll}
                     data-message-count={s.timeline.applied().to_string()} data-last-sequence={s.timeline.last_sequence().to_string()}>
                    { for blocks.into_iter().filter(|b| !b.borrow().discarded).map(|b| {
                        let (key, version) = { let b = b.borrow(); (b.key, b.version) };
                        html! { <BlockView key={key} block={b} version={version} active={active} agent={props.id} on_message={on_message.clone()} /> }
                    }) }
                    if streaming {
                        <div class="typing" aria-hidden="true"><span></span><span></span><span></span></div>
                    }
                </div>
                if *show_jump {
                    <button class="jump" data-testid="jump-latest" onclick={jump}>{ "↓ Jump to latest" }</button>
                }
            </div>
            <Composer id={props.id} status={status} gone={false} on_message={on_message} />
        </section>
    }
}

/// The agent's usage, summed over its turns: tokens in / out / cache, cost, turns, time (the list's
/// copy is the freshest: each turn's end brings it).
fn usage_line(u: &agentstream_wire::UsageTotals) -> Html {
    html! {
        <p class="agent-usage" data-testid="agent-usage-header">
            <span title="input tokens (not from a cache)" data-testid="usage-in">{ format!("in {}", usage::count(u.input_tokens)) }</span>
            <span title="output tokens" data-testid="usage-out">{ format!("out {}", usage::count(u.output_tokens)) }</span>
            <span title="cache read / written tokens" data-testid="usage-cache">{ format!("cache {} / {}", usage::count(u.cache_read_tokens), usage::count(u.cache_write_tokens)) }</span>
            <span title="cost, as the agent CLI reports it (— where it reports none)" data-testid="usage-cost">{ usage::cost(u.cost_usd) }</span>
            <span data-testid="usage-turns">{ format!("{} turns", u.turns) }</span>
            <span data-testid="usage-time">{ time::duration(u.duration_ms as i64) }</span>
        </p>
    }
}
