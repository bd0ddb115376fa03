//! The app's root: one WebSocket connection, the live agent list (newest first), the launch form, the
//! selected agent's view, and routing (`/` and `/agents/<id>`, with the browser's history).

use std::rc::Rc;

use agentstream_wire::{Agent, ServerEvent};
use uuid::Uuid;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::agent_list::AgentList;
use crate::agent_view::AgentView;
use crate::api;
use crate::auth::{self, TokenForm};
use crate::connection::{ConnState, Connection};
use crate::launch::LaunchForm;
use crate::usage_view::UsageView;

/// Where the app is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Home,
    Agent(Uuid),
    Usage,
    /// `/webhooks`: the webhook consumers.
    Webhooks,
}

impl Route {
    fn current() -> Route {
        let path = web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .unwrap_or_default();
        if path.trim_end_matches('/') == "/usage" {
            return Route::Usage;
        }
        if path.trim_end_matches('/') == "/webhooks" {
            return Route::Webhooks;
        }
        path.strip_prefix("/agents/")
            .and_then(|id| Uuid::parse_str(id.trim_end_matches('/')).ok())
            .map_or(Route::Home, Route::Agent)
    }

    fn path(self) -> String {
        match self {
            Route::Home => "/".to_owned(),
            Route::Agent(id) => format!("/agents/{id}"),
            Route::Usage => "/usage".to_owned(),
            Route::Webhooks => "/webhooks".to_owned(),
        }
    }
}

/// The list of agents, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agents(pub Rc<Vec<Agent>>);

/// Changes to the list.
pub enum AgentsAction {
    Load(Vec<Agent>),
    /// This client's launch, as its `POST` answered: added unless the list has it already (its
    /// `agent:created` and later `agent:status` events may have come first, and are newer).
    Launched(Agent),
    Event(ServerEvent),
}

impl Reducible for Agents {
    type Action = AgentsAction;

    fn reduce(self: Rc<Self>, action: AgentsAction) -> Rc<Self> {
        let mut list = (*self.0).clone();
        match action {
            AgentsAction::Load(agents) => list = agents,
            AgentsAction::Launched(agent) => {
                if list.iter().any(|a| a.id == agent.id) {
                    return self;
                }
                upsert(&mut list, agent)
            }
            AgentsAction::Event(ServerEvent::AgentCreated(c)) => upsert(&mut list, c.agent),
            AgentsAction::Event(ServerEvent::AgentStatus(s)) => {
                if let Some(a) = list.iter_mut().find(|a| a.id == s.agent_id) {
                    a.status = s.status;
                    if let Some(usage) = s.usage {
                        a.usage = usage;
                    }
                }
            }
            AgentsAction::Event(ServerEvent::AgentDeleted(d)) if d.purged => {
                list.retain(|a| a.id != d.agent_id)
            }
            AgentsAction::Event(_) => return self,
        }
        Rc::new(Agents(Rc::new(list)))
    }
}

/// Inserts or replaces, keeping newest first.
fn upsert(list: &mut Vec<Agent>, agent: Agent) {
    match list.iter_mut().find(|a| a.id == agent.id) {
        Some(existing) => *existing = agent,
        None => {
            let at = list
                .iter()
                .position(|a| a.created_at < agent.created_at)
                .unwrap_or(list.len());
            list.insert(at, agent);
        }
    }
}

/// Goes to `route`, adding a history entry.
pub fn navigate(route: Route, set: &UseStateHandle<Route>) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&route.path()));
    }
    set.set(route);
}

#[function_component(App)]
pub fn app() -> Html {
    let agents = use_reducer(Agents::default);
    let route = use_state(Route::current);
    let state = use_state(|| ConnState::Connecting);

    let conn = {
        let agents = agents.dispatcher();
        let state = state.setter();
        use_memo((), move |_| {
            let on_global =
                Callback::from(move |e: ServerEvent| agents.dispatch(AgentsAction::Event(e)));
            Connection::start(on_global, Callback::from(move |s| state.set(s)))
        })
    };

    // A 401 from any call: ask for the API token instead of showing the app.
    let needs_token = use_state(|| false);
    {
        let needs_token = needs_token.setter();
        use_effect_with((), move |_| {
            auth::on_unauthorized(Callback::from(move |_| needs_token.set(true)));
        });
    }
    // A first call at once: it tells whether a token is needed (a refused WebSocket cannot say why).
    use_effect_with((), move |_| wasm_bindgen_futures::spawn_local(api::probe()));

    // The list: loaded at start and after every reconnect (events may have been missed meanwhile).
    {
        let agents = agents.dispatcher();
        use_effect_with(*state == ConnState::Live, move |live| {
            if *live {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(list) = api::list_agents().await {
                        agents.dispatch(AgentsAction::Load(list));
                    }
                });
            }
        });
    }

    // Back and forward buttons.
    {
        let route = route.setter();
        use_effect_with((), move |_| {
            let listener = Closure::<dyn Fn(web_sys::Event)>::new(move |_: web_sys::Event| {
                route.set(Route::current())
            });
            let window = web_sys::window();
            if let Some(w) = &window {
                let _ = w.add_event_listener_with_callback(
                    "popstate",
                    listener.as_ref().unchecked_ref(),
                );
            }
            move || {
                if let Some(w) = window {
                    let _ = w.remove_event_listener_with_callback(
                        "popstate",
                        listener.as_ref().unchecked_ref(),
                    );
                }
            }
        });
    }

    let on_select = {
        let route = route.clone();
        Callback::from(move |id: Uuid| navigate(Route::Agent(id), &route))
    };
    let on_launched = {
        let route = route.clone();
        let agents = agents.dispatcher();
        Callback::from(move |agent: Agent| {
            let id = agent.id;
            agents.dispatch(AgentsAction::Launched(agent));
            navigate(Route::Agent(id), &route);
        })
    };
    let on_home = {
        let route = route.clone();
        Callback::from(move |e: MouseEvent| {
            e.prevent_default();
            navigate(Route::Home, &route);
        })
    };
    let on_usage = {
        let route = route.clone();
        Callback::from(move |e: MouseEvent| {
            e.prevent_default();
            navigate(Route::Usage, &route);
        })
    };
    let on_purged = {
        let route = route.clone();
        Callback::from(move |_: Uuid| navigate(Route::Home, &route))
    };
    let on_webhooks = {
        let route = route.clone();
        Callback::from(move |e: MouseEvent| {
            e.prevent_default();
            navigate(Route::Webhooks, &route);
        })
    };
    let selected = match *route {
        Route::Agent(id) => Some(id),
        Route::Home | Route::Usage | Route::Webhooks => None,
    };
    let listed = selected.and_then(|id| agents.0.iter().find(|a| a.id == id).cloned());

    html! {
        <div class="app">
            <header class="topbar">
                <a class="brand" href="/" onclick={on_home}>{ "agentstream" }</a>
                <nav class="nav">
                    <a href="/usage" data-testid="usage-link" onclick={on_usage}
                       class={classes!((*route == Route::Usage).then_some("on"))}>{ "Usage" }</a>
                    <a href="/webhooks" data-testid="nav-webhooks" onclick={on_webhooks}
                       class={classes!((*route == Route::Webhooks).then_some("on"))}>{ "Webhooks" }</a>
                    // The API's own page (Swagger UI on its OpenAPI document): it uses the token stored here.
                    <a href="/api/docs" target="_blank" rel="noopener" data-testid="api-docs"
                       title="The HTTP API: every operation, tried out with this browser's token">{ "API" }</a>
                </nav>
                <span class={classes!("conn", state.label())} data-testid="connection" data-state={state.label()}
                      title="WebSocket connection">
                    <span class="dot"></span>{ state.label() }
                </span>
            </header>
            if *needs_token {
                <div class="empty"><TokenForm /></div>
            } else {
            <div class={classes!("layout", selected.is_some().then_some("has-agent"))}>
                <aside class="sidebar">
                    <LaunchForm on_launched={on_launched} />
                    <AgentList agents={agents.0.clone()} selected={selected} on_select={on_select} />
                </aside>
                <main class="main">
                    {
                        match selected {
                            None if *route == Route::Usage => html! { <UsageView /> },
                            None if *route == Route::Webhooks => html! { <crate::webhooks::WebhooksView /> },
                            Some(id) => html! { <AgentView key={id.to_string()} id={id} listed={listed} conn={(*conn).clone()} on_purged={on_purged} /> },
                            None => html! {
                                <div class="empty">
                                    <h2>{ "Launch an agent, or pick one" }</h2>
                                    <p>{ "Its messages stream here live, in order, and survive reconnects and restarts." }</p>
                                </div>
                            },
                        }
                    }
                </main>
            </div>
            }
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::{AgentCreated, AgentStatus, AgentStatusChanged};
    use serde_json::json;

    fn agent(status: &str) -> Agent {
        serde_json::from_value(json!({
            "id": "01a234a9-8ddf-7095-a4f1-6a70010de19d", "type": "synthetic", "status": status,
            "prompt": "p", "createdAt": "2026-12-02T10:00:00.000Z", "startedAt": null, "completedAt": null
        }))
        .expect("agent")
    }

    #[test]
    fn a_launch_answered_after_its_events_does_not_take_the_status_back() {
        let launched = agent("initializing");
        let list = Rc::new(Agents::default())
            .reduce(AgentsAction::Event(ServerEvent::AgentCreated(
                AgentCreated {
                    agent: launched.clone(),
                    timestamp: String::new(),
                },
            )))
            .reduce(AgentsAction::Event(ServerEvent::AgentStatus(
                AgentStatusChanged {
                    agent_id: launched.id,
                    status: AgentStatus::AwaitingPermission,
                    timestamp: String::new(),
                    usage: None,
                },
            )))
            .reduce(AgentsAction::Launched(launched.clone()));
        assert_eq!(list.0.len(), 1);
        assert_eq!(list.0[0].status, AgentStatus::AwaitingPermission);
        // Answered before its events: added.
        let list = Rc::new(Agents::default()).reduce(AgentsAction::Launched(launched));
        assert_eq!(list.0[0].status, AgentStatus::Initializing);
    }

    #[test]
    fn a_turns_end_brings_the_agents_usage_to_the_list() {
        let listed = agent("running");
        let usage = agentstream_wire::UsageTotals {
            output_tokens: 7,
            cost_usd: Some(0.0),
            turns: 1,
            ..Default::default()
        };
        let status = |status, usage| {
            AgentsAction::Event(ServerEvent::AgentStatus(AgentStatusChanged {
                agent_id: listed.id,
                status,
                timestamp: String::new(),
                usage,
            }))
        };
        let list = Rc::new(Agents::default())
            .reduce(AgentsAction::Load(vec![listed.clone()]))
            .reduce(status(AgentStatus::Completed, Some(usage.clone())))
            // A status without usage (a turn starting) keeps what the list has.
            .reduce(status(AgentStatus::Running, None));
        assert_eq!(list.0[0].usage, usage);
        assert_eq!(list.0[0].status, AgentStatus::Running);
    }
}
