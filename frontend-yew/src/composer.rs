//! The composer under the transcript: a follow-up to the agent (Enter sends, Shift+Enter is a new line),
//! Interrupt while a turn is under way, Continue once it has ended. A follow-up is taken in every status
//! (during a turn it becomes the next one); the composer is disabled, with its reason shown, only while
//! a send is in flight or when the agent cannot take one at all. The stored follow-up comes back from
//! the server and goes into the transcript like any other message (once: the timeline deduplicates).

use agentstream_wire::{AgentStatus, ErrorInfo, StoredMessage};
use uuid::Uuid;
use yew::prelude::*;

use crate::api;

/// What the Continue button sends.
pub const CONTINUE: &str = "Continue.";

/// Why the composer cannot send now; `None` when it can.
pub fn unavailable(status: Option<AgentStatus>, gone: bool, sending: bool) -> Option<&'static str> {
    if gone {
        return Some("This agent no longer exists: it cannot be sent anything.");
    }
    if sending {
        return Some("Sending…");
    }
    // Every agent type can be continued (`GET /api/agent-types` says `conversations` of each); a
    // server that refuses one says why, and the composer shows it.
    status.is_none().then_some("Loading the agent…")
}

/// What a key pressed in the composer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Enter: send the text.
    Send,
    /// Anything else (Shift+Enter: a new line; Enter while an input method composes: its own).
    Type,
}

/// Enter sends; Shift+Enter, and Enter that confirms an input method's composition, do not.
pub fn key_action(key: &str, shift: bool, composing: bool) -> KeyAction {
    if key == "Enter" && !shift && !composing {
        KeyAction::Send
    } else {
        KeyAction::Type
    }
}

/// The textarea's hint, by the agent's status.
pub fn placeholder(status: Option<AgentStatus>) -> &'static str {
    match status {
        Some(AgentStatus::AwaitingPermission) => {
            "The agent waits for your permission above; a message sent now comes after it…"
        }
        Some(s) if s.is_active() => "Send a follow-up: it becomes the next turn…",
        Some(_) => "Continue the conversation…",
        None => "",
    }
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: Uuid,
    pub status: Option<AgentStatus>,
    /// The agent does not exist (any more).
    pub gone: bool,
    /// Takes the stored follow-up.
    pub on_message: Callback<StoredMessage>,
}

#[function_component(Composer)]
pub fn composer(props: &Props) -> Html {
    let input = use_node_ref();
    let has_text = use_state(|| false);
    let sending = use_state(|| false);
    let interrupting = use_state(|| false);
    let error = use_state(|| None::<ErrorInfo>);
    let refocus = use_mut_ref(|| false);

    // Back to the textarea once a send is done (it was disabled meanwhile).
    {
        let (input, refocus) = (input.clone(), refocus.clone());
        use_effect(move || {
            if std::mem::take(&mut *refocus.borrow_mut()) {
                if let Some(t) = input.cast::<web_sys::HtmlElement>() {
                    let _ = t.focus();
                }
            }
        });
    }

    let reason = unavailable(props.status, props.gone, *sending);
    // Sends `content`; `from_input`: it is the textarea's, cleared once stored.
    let send = {
        let (sending, error, has_text, refocus, input) = (
            sending.clone(),
            error.clone(),
            has_text.clone(),
            refocus.clone(),
            input.clone(),
        );
        let (id, on_message, blocked) = (props.id, props.on_message.clone(), reason.is_some());
        Callback::from(move |(content, from_input): (String, bool)| {
            if blocked || content.trim().is_empty() {
                return;
            }
            sending.set(true);
            error.set(None);
            let (sending, error, has_text, refocus, input, on_message) = (
                sending.clone(),
                error.clone(),
                has_text.clone(),
                refocus.clone(),
                input.clone(),
                on_message.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                match api::send_message(id, &content).await {
                    Ok(stored) => {
                        if from_input {
                            if let Some(t) = input.cast::<web_sys::HtmlTextAreaElement>() {
                                t.set_value("");
                            }
                            has_text.set(false);
                        }
                        on_message.emit(stored);
                    }
                    Err(e) => error.set(Some(e)),
                }
                *refocus.borrow_mut() = from_input;
                sending.set(false);
            });
        })
    };
    let text_of = |input: &NodeRef| {
        input
            .cast::<web_sys::HtmlTextAreaElement>()
            .map(|t| t.value())
            .unwrap_or_default()
    };
    let onsubmit = {
        let (send, input) = (send.clone(), input.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            send.emit((text_of(&input), true));
        })
    };
    let onkeydown = {
        let (send, input) = (send.clone(), input.clone());
        Callback::from(move |e: KeyboardEvent| {
            if key_action(&e.key(), e.shift_key(), e.is_composing()) == KeyAction::Send {
                e.prevent_default();
                send.emit((text_of(&input), true));
            }
        })
    };
    let oninput = {
        let (has_text, input) = (has_text.clone(), input.clone());
        Callback::from(move |_: InputEvent| {
            let now = !text_of(&input).trim().is_empty();
            if *has_text != now {
                has_text.set(now);
            }
        })
    };
    let on_continue = send.reform(|_: MouseEvent| (CONTINUE.to_owned(), false));
    let on_interrupt = {
        let (interrupting, error, id) = (interrupting.clone(), error.clone(), props.id);
        Callback::from(move |_: MouseEvent| {
            interrupting.set(true);
            error.set(None);
            let (interrupting, error) = (interrupting.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = api::interrupt(id).await {
                    error.set(Some(e));
                }
                interrupting.set(false);
            });
        })
    };

    let active = props.status.is_some_and(AgentStatus::is_active);
    let ended = props.status.is_some_and(AgentStatus::is_terminal);
    html! {
        <form class="composer" data-testid="composer" data-state={if reason.is_some() { "disabled" } else { "ready" }}
              onsubmit={onsubmit}>
            <textarea ref={input} data-testid="composer-input" rows="2" aria-label="Message to the agent"
                      placeholder={reason.unwrap_or_else(|| placeholder(props.status))}
                      disabled={reason.is_some()} onkeydown={onkeydown} oninput={oninput} />
            <div class="composer-bar">
                <span class="composer-hint" data-testid="composer-reason">
                    { reason.unwrap_or("Enter sends · Shift+Enter for a new line") }
                </span>
                if active && !props.gone {
                    <button type="button" data-testid="interrupt" disabled={*interrupting} onclick={on_interrupt}
                            title="Stop the current turn; the conversation can go on after it">
                        { if *interrupting { "Interrupting…" } else { "Interrupt" } }
                    </button>
                }
                if ended && !props.gone {
                    <button type="button" data-testid="continue" disabled={reason.is_some()} onclick={on_continue}
                            title={format!("Send {CONTINUE:?}: the agent takes up where it stopped")}>{ "Continue" }</button>
                }
                <button type="submit" data-testid="composer-send" disabled={reason.is_some() || !*has_text}>
                    { if *sending { "Sending…" } else { "Send" } }
                </button>
            </div>
            if let Some(e) = &*error {
                <div class="field-error" data-testid="composer-error" role="alert"><strong>{ e.code.clone() }</strong>{ ": " }{ e.message.clone() }</div>
            }
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_sends_and_shift_enter_is_a_new_line() {
        assert_eq!(key_action("Enter", false, false), KeyAction::Send);
        assert_eq!(key_action("Enter", true, false), KeyAction::Type);
        assert_eq!(
            key_action("Enter", false, true),
            KeyAction::Type,
            "an input method's Enter confirms its text"
        );
        assert_eq!(key_action("a", false, false), KeyAction::Type);
    }

    #[test]
    fn a_follow_up_can_be_sent_in_every_status() {
        for status in AgentStatus::ALL {
            assert_eq!(unavailable(Some(status), false, false), None, "{status}");
            assert!(!placeholder(Some(status)).is_empty());
        }
    }

    #[test]
    fn the_composer_says_why_it_cannot_send() {
        let ready = Some(AgentStatus::Running);
        assert_eq!(unavailable(ready, false, true), Some("Sending…"));
        assert!(unavailable(ready, true, false).is_some_and(|r| r.contains("no longer exists")));
        assert!(unavailable(None, false, false).is_some_and(|r| r.contains("Loading")));
        // Gone wins over everything: nothing else can help.
        assert!(unavailable(None, true, true).is_some_and(|r| r.contains("no longer")));
    }
}
