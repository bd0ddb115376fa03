//! The agent list: newest first, with type, status badge, prompt excerpt and age, updated live; above
//! it a search box (`GET /api/agents?q=`) that narrows it to the agents whose prompt or messages hold
//! the words typed, each with the passage that matched.

use std::cell::RefCell;
use std::rc::Rc;

use agentstream_wire::{Agent, AgentMatch, AgentStatus};
use gloo_timers::callback::Timeout;
use uuid::Uuid;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::search::{query_of, shown, Results, Shown, DEBOUNCE_MS, LIMIT};
use crate::{api, time, usage};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub agents: Rc<Vec<Agent>>,
    pub selected: Option<Uuid>,
    pub on_select: Callback<Uuid>,
}

/// The prompt's first line, cut.
fn excerpt(prompt: &str) -> String {
    let line = prompt.lines().next().unwrap_or_default();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(80).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// What a status means, on hover.
fn status_hint(status: AgentStatus) -> &'static str {
    match status {
        AgentStatus::Initializing => "starting",
        AgentStatus::Running => "a turn is under way",
        AgentStatus::AwaitingPermission => "waiting for you: allow or deny a tool call",
        AgentStatus::Completed => "its last turn completed; a message continues it",
        AgentStatus::Failed => "its last turn failed; a message continues it",
        AgentStatus::Terminated => "terminated; a message continues it",
        AgentStatus::Interrupted => "its turn was interrupted; a message continues it",
    }
}

/// One agent of the list; `matched`: the passage a search found in it.
fn item(agent: &Agent, matched: Option<&str>, selected: bool, on_select: &Callback<Uuid>) -> Html {
    let id = agent.id;
    let onclick = on_select.reform(move |_: MouseEvent| id);
    html! {
        <li key={id.to_string()} data-testid="agent-item" data-agent-id={id.to_string()}
            class={classes!("agent-item", selected.then_some("selected"))} onclick={onclick}>
            <div class="row">
                <span class="type">{ agent.agent_type.as_str() }</span>
                <span class={classes!("badge", agent.status.as_str())} data-testid="agent-status"
                      title={status_hint(agent.status)}>{ agent.status.as_str() }</span>
            </div>
            <div class="prompt">{ excerpt(&agent.prompt) }</div>
            if let Some(matched) = matched {
                <div class="match" data-testid="agent-match">{ matched }</div>
            }
            <div class="age">
                { time::age(&agent.created_at) }
                <span class="usage" data-testid="agent-usage" title="tokens used, and cost where the CLI reports it">
                    { usage::summary(&agent.usage) }
                </span>
            </div>
        </li>
    }
}

/// The search's answer to the query in the box.
#[derive(Clone, PartialEq)]
enum Answer {
    /// None yet (the box is blank, or typing has not paused).
    Waiting,
    Found(Rc<Results>),
    Failed(String),
}

/// The first page of the results for `query`.
fn first_page(found: Vec<AgentMatch>) -> Answer {
    let mut results = Results::default();
    results.add_page(found);
    Answer::Found(Rc::new(results))
}

#[function_component(AgentList)]
pub fn agent_list(props: &Props) -> Html {
    // Ages move on: re-render every 10 s.
    let tick = use_state(|| 0u32);
    {
        let tick = tick.clone();
        use_effect_with((), move |_| {
            let interval = gloo_timers::callback::Interval::new(10_000, move || {
                tick.set(tick.wrapping_add(1))
            });
            move || drop(interval)
        });
    }
    let input = use_state(String::new);
    let answer = use_state(|| Answer::Waiting);
    // The pending query (dropping it cancels it), and the number of the latest one: an answer to an
    // older query than the box holds is dropped.
    let timer = use_mut_ref(|| None::<Timeout>);
    let latest = use_mut_ref(|| 0u32);
    // A next page on its way ("More matches" waits for it).
    let loading_more = use_state(|| false);
    let oninput = {
        let input = input.setter();
        let answer = answer.setter();
        let latest = latest.clone();
        Callback::from(move |e: InputEvent| {
            let Some(value) = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                .map(|i| i.value())
            else {
                return;
            };
            input.set(value.clone());
            *latest.borrow_mut() += 1;
            let number = *latest.borrow();
            let Some(query) = query_of(&value).map(str::to_owned) else {
                timer.borrow_mut().take();
                answer.set(Answer::Waiting);
                return;
            };
            let answer = answer.clone();
            let latest: Rc<RefCell<u32>> = latest.clone();
            *timer.borrow_mut() = Some(Timeout::new(DEBOUNCE_MS, move || {
                wasm_bindgen_futures::spawn_local(async move {
                    let result = api::search_agents(&query, LIMIT, None).await;
                    if *latest.borrow() == number {
                        answer.set(match result {
                            Ok(found) => first_page(found),
                            Err(e) => Answer::Failed(e.message),
                        });
                    }
                });
            }));
        })
    };
    let on_more = {
        let answer = answer.clone();
        let loading_more = loading_more.clone();
        let query = query_of(&input).map(str::to_owned);
        Callback::from(move |_: MouseEvent| {
            let (Some(query), Answer::Found(results)) = (query.clone(), &*answer) else {
                return;
            };
            let Some(before) = results.next_page() else {
                return;
            };
            if *loading_more {
                return;
            }
            loading_more.set(true);
            let number = *latest.borrow();
            let latest = latest.clone();
            let answer = answer.clone();
            let loading_more = loading_more.clone();
            let results = results.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let page = api::search_agents(&query, LIMIT, Some(before)).await;
                loading_more.set(false);
                // The box changed meanwhile: this page belongs to another query.
                if *latest.borrow() != number {
                    return;
                }
                answer.set(match page {
                    Ok(page) => {
                        let mut more = (*results).clone();
                        more.add_page(page);
                        Answer::Found(Rc::new(more))
                    }
                    Err(e) => Answer::Failed(e.message),
                });
            });
        })
    };
    let query = query_of(&input).map(str::trim);
    let (listed, note): (Vec<Shown>, Html) = match (query, &*answer) {
        (None, _) => (
            props.agents.iter().map(|a| (a.clone(), None)).collect(),
            Html::default(),
        ),
        (Some(_), Answer::Waiting) => (
            Vec::new(),
            html! { <p class="search-note" data-testid="search-pending">{ "Searching…" }</p> },
        ),
        (Some(_), Answer::Failed(message)) => (
            Vec::new(),
            html! { <p class="field-error" data-testid="search-error">{ message.clone() }</p> },
        ),
        (Some(q), Answer::Found(results)) => {
            let listed = shown(&props.agents, &results.found);
            let note = if listed.is_empty() && !results.more {
                html! { <p class="search-note" data-testid="search-empty">{ format!("No agent matches \u{201c}{q}\u{201d}.") }</p> }
            } else {
                Html::default()
            };
            (listed, note)
        }
    };
    let more = match &*answer {
        Answer::Found(results) if query.is_some() && results.more => html! {
            <button class="search-more" data-testid="search-more" disabled={*loading_more}
                    onclick={on_more}>
                { if *loading_more { "Loading…" } else { "More matches" } }
            </button>
        },
        _ => Html::default(),
    };
    html! {
        <section class="agents">
            <h2>{ "Agents" }<span class="count">{ listed.len() }</span></h2>
            <input class="search" type="search" data-testid="agent-search" value={(*input).clone()}
                   placeholder="Search prompts and messages" aria-label="Search agents" oninput={oninput} />
            { note }
            <ul data-testid="agent-list">
                { for listed.iter().map(|(a, matched)| {
                    item(a, matched.as_deref(), props.selected == Some(a.id), &props.on_select)
                }) }
            </ul>
            { more }
        </section>
    }
}
