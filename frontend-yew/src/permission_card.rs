//! A permission request as a card: the tool's name and input, and Allow / Always allow / Deny while it
//! can be answered; its decision once answered (by this client or any other); "no longer waiting" once
//! its turn ended. The answer the server stores comes back as a message, which marks the card.

use agentstream_wire::{ErrorInfo, PermissionAnswer, PermissionDecision, StoredMessage};
use uuid::Uuid;
use yew::prelude::*;

use crate::api;
use crate::transcript::{card_state, CardState, PermissionCard};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub card: PermissionCard,
    /// The agent's turn is under way.
    pub active: bool,
    pub agent: Uuid,
    /// Takes the stored answer.
    pub on_message: Callback<StoredMessage>,
    /// The block's meta line.
    pub meta: Html,
}

/// Where this client's answer is.
#[derive(Clone, Copy, PartialEq)]
enum Sending {
    Idle,
    /// Posted; the button that was pressed.
    InFlight(&'static str),
    /// Stored: the card changes when the answer's message is applied.
    Sent,
}

/// The element id of a request's card (the header's notice scrolls to it).
pub fn card_element_id(request_id: &str) -> String {
    format!("permission-{request_id}")
}

#[function_component(PermissionCardView)]
pub fn permission_card_view(props: &Props) -> Html {
    let sending = use_state(|| Sending::Idle);
    let error = use_state(|| None::<ErrorInfo>);
    let card = &props.card;

    let answer = |which: &'static str, decision: PermissionDecision, always: bool| {
        let (sending, error) = (sending.clone(), error.clone());
        let (agent, request_id, on_message) = (
            props.agent,
            card.request_id.clone(),
            props.on_message.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            if *sending != Sending::Idle {
                return;
            }
            sending.set(Sending::InFlight(which));
            error.set(None);
            let body = PermissionAnswer {
                decision,
                message: None,
                updated_input: None,
                always: always.then_some(true),
            };
            let (sending, error, request_id, on_message) = (
                sending.clone(),
                error.clone(),
                request_id.clone(),
                on_message.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                match api::answer_permission(agent, &request_id, &body).await {
                    Ok(stored) => {
                        sending.set(Sending::Sent);
                        on_message.emit(stored);
                    }
                    Err(e) => {
                        sending.set(Sending::Idle);
                        error.set(Some(e));
                    }
                }
            });
        })
    };

    let state = card_state(card, props.active);
    let state_name = match state {
        CardState::Answerable => "waiting",
        CardState::Answered(a) if a.allowed() => "allowed",
        CardState::Answered(_) => "denied",
        CardState::NoLongerWaiting => "ended",
    };
    let busy = |which: &'static str, label: &'static str| {
        if *sending == Sending::InFlight(which) {
            "Sending…"
        } else {
            label
        }
    };
    let disabled = *sending != Sending::Idle;
    html! {
        <div class={classes!("block", "permission", state_name)} id={card_element_id(&card.request_id)}
             data-testid="permission-card" data-request-id={card.request_id.clone()} data-state={state_name}>
            { props.meta.clone() }
            <div class="permission-head">
                <span class="permission-label">{ "Permission" }</span>
                <span class="tool-name" data-testid="permission-tool">{ card.tool_name.clone() }</span>
                <span class="permission-ask">{ match state {
                    CardState::Answerable | CardState::NoLongerWaiting => "asks to run with",
                    CardState::Answered(_) => "asked to run with",
                } }</span>
            </div>
            <pre class="input" data-testid="permission-input">{ card.input.clone() }</pre>
            { match state {
                CardState::Answerable if *sending == Sending::Sent => html! {
                    <div class="permission-decision" data-testid="permission-sent">{ "Answer sent…" }</div>
                },
                CardState::Answerable => html! {
                    <div class="permission-actions">
                        <button class="allow" data-testid="permission-allow" disabled={disabled}
                                onclick={answer("allow", PermissionDecision::Allow, false)}>{ busy("allow", "Allow") }</button>
                        <button data-testid="permission-always" disabled={disabled}
                                title={format!("Allow every later call of {} too, for the rest of the session", card.tool_name)}
                                onclick={answer("always", PermissionDecision::Allow, true)}>
                            { if *sending == Sending::InFlight("always") { "Sending…".to_owned() } else { format!("Always allow {}", card.tool_name) } }
                        </button>
                        <button class="danger" data-testid="permission-deny" disabled={disabled}
                                onclick={answer("deny", PermissionDecision::Deny, false)}>{ busy("deny", "Deny") }</button>
                    </div>
                },
                CardState::Answered(a) => html! {
                    <div class={classes!("permission-decision", if a.allowed() { "allowed" } else { "denied" })}
                         data-testid="permission-decision">{ a.label() }</div>
                },
                CardState::NoLongerWaiting => html! {
                    <div class="permission-decision ended" data-testid="permission-decision">{ "No longer waiting: its turn ended without an answer" }</div>
                },
            } }
            if let Some(e) = &*error {
                <div class="field-error" data-testid="permission-error" role="alert"><strong>{ e.code.clone() }</strong>{ ": " }{ e.message.clone() }</div>
            }
        </div>
    }
}
