//! The agent list: newest first, with type, status badge, prompt excerpt and age, updated live.

use std::rc::Rc;

use agentstream_wire::{Agent, AgentStatus};
use uuid::Uuid;
use yew::prelude::*;

use crate::time;
use crate::usage;

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
    html! {
        <section class="agents">
            <h2>{ "Agents" }<span class="count">{ props.agents.len() }</span></h2>
            <ul data-testid="agent-list">
                { for props.agents.iter().map(|a| {
                    let id = a.id;
                    let onclick = props.on_select.reform(move |_: MouseEvent| id);
                    let selected = props.selected == Some(id);
                    html! {
                        <li key={id.to_string()} data-testid="agent-item" data-agent-id={id.to_string()}
                            class={classes!("agent-item", selected.then_some("selected"))} onclick={onclick}>
                            <div class="row">
                                <span class="type">{ a.agent_type.as_str() }</span>
                                <span class={classes!("badge", a.status.as_str())} data-testid="agent-status"
                                      title={status_hint(a.status)}>{ a.status.as_str() }</span>
                            </div>
                            <div class="prompt">{ excerpt(&a.prompt) }</div>
                            <div class="age">
                                { time::age(&a.created_at) }
                                <span class="usage" data-testid="agent-usage" title="tokens used, and cost where the CLI reports it">
                                    { usage::summary(&a.usage) }
                                </span>
                            </div>
                        </li>
                    }
                }) }
            </ul>
        </section>
    }
}
