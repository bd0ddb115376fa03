//! The Webhooks view: every consumer with its lag, last error and whether it is paused (refreshed
//! every two seconds), a form to register one, and pause / resume / delete on each. The server's
//! validation errors appear next to the field they name.

use std::collections::BTreeSet;

use agentstream_wire::{
    CreateWebhookRequest, ErrorInfo, UpdateWebhookRequest, Webhook, WebhookEvent,
};
use uuid::Uuid;
use yew::prelude::*;

use crate::api;
use crate::time;

/// How often the list (and each lag) is read again.
const REFRESH_MS: u32 = 2000;

/// The form's field a server error is about: each webhook error code names one; an unreadable body
/// names the field its message starts with.
fn field_of(error: &ErrorInfo) -> Option<&'static str> {
    match error.code.as_str() {
        "invalid_url" => Some("url"),
        "invalid_secret" => Some("secret"),
        "invalid_agent_ids" => Some("agentIds"),
        "invalid_events" => Some("events"),
        _ => None,
    }
}

/// The form as typed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Fields {
    url: String,
    secret: String,
    /// Agent ids, one per line or separated by commas or spaces; empty: every agent.
    agent_ids: String,
    /// The kinds ticked; every one (or none): every kind.
    events: BTreeSet<&'static str>,
}

/// The request the form makes.
fn request(fields: &Fields) -> CreateWebhookRequest {
    let ids: Vec<String> = fields
        .agent_ids
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let all = fields.events.is_empty() || fields.events.len() == WebhookEvent::ALL.len();
    CreateWebhookRequest {
        url: fields.url.trim().to_owned(),
        secret: fields.secret.clone(),
        agent_ids: (!ids.is_empty()).then_some(ids),
        events: (!all).then(|| {
            WebhookEvent::ALL
                .iter()
                .map(|e| e.as_str())
                .filter(|e| fields.events.contains(e))
                .map(str::to_owned)
                .collect()
        }),
    }
}

/// An error and the field it belongs to (`None`: the form as a whole).
#[derive(Clone, Debug, PartialEq)]
struct FieldError {
    field: Option<&'static str>,
    message: String,
}

fn input_value(e: &InputEvent) -> String {
    use wasm_bindgen::JsCast;
    e.target()
        .and_then(|t| {
            t.dyn_ref::<web_sys::HtmlInputElement>()
                .map(|i| i.value())
                .or_else(|| {
                    t.dyn_ref::<web_sys::HtmlTextAreaElement>()
                        .map(|i| i.value())
                })
        })
        .unwrap_or_default()
}

#[function_component(WebhooksView)]
pub fn webhooks_view() -> Html {
    let list = use_state(|| None::<Result<Vec<Webhook>, ErrorInfo>>);
    let fields = use_state(Fields::default);
    let error = use_state(|| None::<FieldError>);
    let action_error = use_state(|| None::<String>);
    let busy = use_state(|| false);

    let reload = {
        let list = list.clone();
        Callback::from(move |_: ()| {
            let list = list.clone();
            wasm_bindgen_futures::spawn_local(async move {
                list.set(Some(api::list_webhooks().await));
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with((), move |_| {
            reload.emit(());
            let reload = reload.clone();
            let interval =
                gloo_timers::callback::Interval::new(REFRESH_MS, move || reload.emit(()));
            move || drop(interval)
        });
    }

    let edit = |change: fn(&mut Fields, String)| {
        let fields = fields.clone();
        Callback::from(move |e: InputEvent| {
            let mut next = (*fields).clone();
            change(&mut next, input_value(&e));
            fields.set(next);
        })
    };
    let on_url = edit(|f, v| f.url = v);
    let on_secret = edit(|f, v| f.secret = v);
    let on_agents = edit(|f, v| f.agent_ids = v);

    let onsubmit = {
        let fields = fields.clone();
        let error = error.clone();
        let busy = busy.clone();
        let reload = reload.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let req = request(&fields);
            error.set(None);
            busy.set(true);
            let (fields, error, busy, reload) =
                (fields.clone(), error.clone(), busy.clone(), reload.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_webhook(&req).await {
                    Ok(_) => {
                        fields.set(Fields::default());
                        reload.emit(());
                    }
                    Err(e) => error.set(Some(FieldError {
                        field: field_of(&e),
                        message: e.message,
                    })),
                }
                busy.set(false);
            });
        })
    };

    let act = {
        let reload = reload.clone();
        let action_error = action_error.clone();
        move |id: Uuid, paused: Option<bool>| {
            let (reload, action_error) = (reload.clone(), action_error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let done = match paused {
                    Some(paused) => {
                        let change = UpdateWebhookRequest {
                            paused: Some(paused),
                            ..UpdateWebhookRequest::default()
                        };
                        api::update_webhook(id, &change).await.map(|_| ())
                    }
                    None => api::delete_webhook(id).await,
                };
                action_error.set(done.err().map(|e| format!("{}: {}", e.code, e.message)));
                reload.emit(());
            });
        }
    };

    let field_error = |field: &str| -> Html {
        match &*error {
            Some(FieldError {
                field: Some(f),
                message,
            }) if *f == field => html! {
                <div class="field-error" data-testid={format!("webhook-error-{field}")}>{ message.clone() }</div>
            },
            _ => html! {},
        }
    };
    let event_box = |event: WebhookEvent| -> Html {
        let name = event.as_str();
        let checked = fields.events.contains(name);
        let onchange = {
            let fields = fields.clone();
            Callback::from(move |_: Event| {
                let mut next = (*fields).clone();
                if !next.events.remove(name) {
                    next.events.insert(name);
                }
                fields.set(next);
            })
        };
        html! {
            <label class="check">
                <input type="checkbox" data-testid={format!("webhook-event-{}", name.replace(':', "-"))}
                       checked={checked} onchange={onchange} />
                { name }
            </label>
        }
    };

    let rows = match &*list {
        None => html! { <p class="muted">{ "Loading…" }</p> },
        Some(Err(e)) => html! {
            <div class="field-error" data-testid="webhooks-load-error">{ format!("{}: {}", e.code, e.message) }</div>
        },
        Some(Ok(hooks)) if hooks.is_empty() => html! {
            <p class="muted" data-testid="webhooks-empty">{ "No webhook yet." }</p>
        },
        Some(Ok(hooks)) => html! {
            <ul class="webhook-list" data-testid="webhook-list">
                { for hooks.iter().map(|w| {
                    let id = w.id;
                    let act_pause = act.clone();
                    let act_delete = act.clone();
                    let paused = w.paused;
                    let filters = format!(
                        "{} · {}",
                        w.agent_ids.as_ref().map_or_else(|| "every agent".to_owned(), |a| format!("{} agents", a.len())),
                        w.events.as_ref().map_or_else(|| "every event".to_owned(), |e| e.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")),
                    );
                    html! {
                        <li key={id.to_string()} class="webhook-item" data-testid="webhook-item" data-webhook-id={id.to_string()}>
                            <div class="row">
                                <span class="url" data-testid="webhook-url">{ w.url.clone() }</span>
                                <span class={classes!("badge", if paused { "interrupted" } else { "running" })} data-testid="webhook-state">
                                    { if paused { "paused" } else { "active" } }
                                </span>
                            </div>
                            <div class="muted">{ filters }</div>
                            <div class="row">
                                <span>{ "lag " }<strong data-testid="webhook-lag">{ w.lag }</strong></span>
                                <span class="muted">{ w.last_delivered_at.as_deref().map_or_else(|| "nothing delivered yet".to_owned(), |t| format!("delivered {}", time::age(t))) }</span>
                            </div>
                            if let Some(failure) = &w.last_error {
                                <div class="field-error" data-testid="webhook-last-error">
                                    { format!("{} ({}{})", failure.message, time::age(&failure.at),
                                        if w.attempts > 0 { format!(", {} failed attempts in a row", w.attempts) } else { String::new() }) }
                                </div>
                            }
                            <div class="actions">
                                <button type="button" data-testid="webhook-pause"
                                        onclick={Callback::from(move |_| act_pause(id, Some(!paused)))}>
                                    { if paused { "Resume" } else { "Pause" } }
                                </button>
                                <button type="button" class="danger" data-testid="webhook-delete"
                                        onclick={Callback::from(move |_| act_delete(id, None))}>{ "Delete" }</button>
                            </div>
                        </li>
                    }
                }) }
            </ul>
        },
    };

    let f = &*fields;
    html! {
        <div class="webhooks" data-testid="webhooks-view">
            <form class="launch" data-testid="webhook-form" onsubmit={onsubmit}>
                <h2>{ "New webhook" }</h2>
                <label>{ "URL" }<input data-testid="webhook-url-input" placeholder="https://…" value={f.url.clone()} oninput={on_url} /></label>
                { field_error("url") }
                <label>{ "Secret (signs every delivery; never shown again)" }
                    <input data-testid="webhook-secret-input" type="password" value={f.secret.clone()} oninput={on_secret} /></label>
                { field_error("secret") }
                <label>{ "Agent ids (empty: every agent)" }
                    <textarea data-testid="webhook-agents-input" rows="2" value={f.agent_ids.clone()} oninput={on_agents} /></label>
                { field_error("agentIds") }
                <fieldset class="events"><legend>{ "Events (none ticked: every event)" }</legend>
                    { for WebhookEvent::ALL.into_iter().map(event_box) }
                </fieldset>
                { field_error("events") }
                if let Some(FieldError { field: None, message }) = &*error {
                    <div class="field-error" data-testid="webhook-error">{ message.clone() }</div>
                }
                <button type="submit" data-testid="webhook-create" disabled={*busy}>{ "Create" }</button>
            </form>
            <section class="webhook-section">
                <h2>{ "Webhooks" }</h2>
                if let Some(message) = &*action_error {
                    <div class="field-error" data-testid="webhook-action-error">{ message.clone() }</div>
                }
                { rows }
            </section>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_webhook_error_code_names_its_field() {
        let e = |code: &str| ErrorInfo {
            code: code.into(),
            message: "m".into(),
        };
        assert_eq!(field_of(&e("invalid_url")), Some("url"));
        assert_eq!(field_of(&e("invalid_secret")), Some("secret"));
        assert_eq!(field_of(&e("invalid_agent_ids")), Some("agentIds"));
        assert_eq!(field_of(&e("invalid_events")), Some("events"));
        assert_eq!(field_of(&e("too_many_webhooks")), None);
    }

    #[test]
    fn the_form_sends_every_agent_and_kind_when_left_empty() {
        let mut fields = Fields {
            url: " http://127.0.0.1:9/h ".into(),
            secret: "k".into(),
            ..Fields::default()
        };
        let all = request(&fields);
        assert_eq!(all.url, "http://127.0.0.1:9/h");
        assert_eq!((all.agent_ids, all.events), (None, None));
        fields.agent_ids = "a, b\nc".into();
        fields.events = ["agent:status", "agent:message"].into_iter().collect();
        let some = request(&fields);
        assert_eq!(
            some.agent_ids,
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        // In the protocol's order.
        assert_eq!(
            some.events,
            Some(vec!["agent:message".into(), "agent:status".into()])
        );
        fields.events = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(request(&fields).events, None);
    }
}
