//! The launch form: type, prompt, and each type's options; the server's validation errors appear next to
//! the field they concern.

use agentstream_wire::{Agent, CreateAgentRequest, ErrorInfo};
use serde_json::{json, Map, Value};
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::api;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub on_launched: Callback<Agent>,
}

/// The form's fields, as typed.
#[derive(Clone, Default, PartialEq)]
struct Fields {
    agent_type: String,
    prompt: String,
    tokens: String,
    interval: String,
    model: String,
    working_directory: String,
    transport: String,
    permission_mode: String,
    /// Synthetic: each turn first asks permission to run a tool.
    ask_permission: bool,
}

/// An error and the field it belongs to (`None`: the form as a whole).
#[derive(Clone, PartialEq)]
struct FieldError {
    field: Option<&'static str>,
    message: String,
}

/// Which field a server error is about.
fn field_of(error: &ErrorInfo) -> Option<&'static str> {
    let m = error.message.as_str();
    match error.code.as_str() {
        "unknown_agent_type" | "agent_type_unavailable" => Some("type"),
        "payload_too_large" | "invalid_body" if m.contains("prompt") => Some("prompt"),
        "invalid_configuration" => Some(if m.contains("tokens") {
            "tokens"
        } else if m.contains("intervalMs") {
            "interval"
        } else if m.contains("model") {
            "model"
        } else if m.contains("workingDirectory") {
            "workingDirectory"
        } else if m.contains("permissionMode") {
            "permissionMode"
        } else {
            "configuration"
        }),
        _ => None,
    }
}

/// The request the fields make, or the field that is wrong.
fn request(f: &Fields) -> Result<CreateAgentRequest, FieldError> {
    let mut config = Map::new();
    let number = |raw: &str, field: &'static str, key: &str, config: &mut Map<String, Value>| {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(());
        }
        raw.parse::<u64>()
            .map(|n| {
                config.insert(key.to_owned(), json!(n));
            })
            .map_err(|_| FieldError {
                field: Some(field),
                message: format!("{raw:?} is not a whole number"),
            })
    };
    let text = |raw: &str, key: &str, config: &mut Map<String, Value>| {
        if !raw.trim().is_empty() {
            config.insert(key.to_owned(), json!(raw.trim()));
        }
    };
    match f.agent_type.as_str() {
        "synthetic" => {
            number(&f.tokens, "tokens", "tokens", &mut config)?;
            number(&f.interval, "interval", "intervalMs", &mut config)?;
            if f.ask_permission {
                config.insert("askPermission".to_owned(), json!(true));
            }
        }
        _ => {
            text(&f.model, "model", &mut config);
            text(&f.working_directory, "workingDirectory", &mut config);
            text(&f.transport, "transport", &mut config);
            text(&f.permission_mode, "permissionMode", &mut config);
        }
    }
    Ok(CreateAgentRequest {
        agent_type: f.agent_type.clone(),
        prompt: f.prompt.clone(),
        configuration: Some(Value::Object(config)),
    })
}

fn value_of(e: &Event) -> String {
    let target = e.target();
    if let Some(i) = target
        .as_ref()
        .and_then(|t| t.dyn_ref::<web_sys::HtmlInputElement>())
    {
        return i.value();
    }
    if let Some(t) = target
        .as_ref()
        .and_then(|t| t.dyn_ref::<web_sys::HtmlTextAreaElement>())
    {
        return t.value();
    }
    target
        .as_ref()
        .and_then(|t| t.dyn_ref::<web_sys::HtmlSelectElement>())
        .map(|s| s.value())
        .unwrap_or_default()
}

#[function_component(LaunchForm)]
pub fn launch_form(props: &Props) -> Html {
    let fields = use_state(|| Fields {
        agent_type: "synthetic".into(),
        prompt: "Tell me about streaming".into(),
        tokens: "200".into(),
        interval: "20".into(),
        ..Fields::default()
    });
    let error = use_state(|| None::<FieldError>);
    let busy = use_state(|| false);

    let set = |update: fn(&mut Fields, String)| {
        let fields = fields.clone();
        Callback::from(move |e: Event| {
            let mut next = (*fields).clone();
            update(&mut next, value_of(&e));
            fields.set(next);
        })
    };
    let on_input = |update: fn(&mut Fields, String)| {
        let fields = fields.clone();
        Callback::from(move |e: InputEvent| {
            let mut next = (*fields).clone();
            update(&mut next, value_of(&e));
            fields.set(next);
        })
    };

    let on_ask_permission = {
        let fields = fields.clone();
        Callback::from(move |e: Event| {
            let checked = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                .is_some_and(|i| i.checked());
            let mut next = (*fields).clone();
            next.ask_permission = checked;
            fields.set(next);
        })
    };

    let onsubmit = {
        let fields = fields.clone();
        let error = error.clone();
        let busy = busy.clone();
        let on_launched = props.on_launched.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let req = match request(&fields) {
                Ok(r) => r,
                Err(e) => return error.set(Some(e)),
            };
            error.set(None);
            busy.set(true);
            let (error, busy, on_launched) = (error.clone(), busy.clone(), on_launched.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::launch(&req).await {
                    Ok(agent) => on_launched.emit(agent),
                    Err(e) => error.set(Some(FieldError {
                        field: field_of(&e),
                        message: e.message,
                    })),
                }
                busy.set(false);
            });
        })
    };

    let field_error = |field: &'static str| -> Html {
        match &*error {
            Some(FieldError {
                field: Some(f),
                message,
            }) if *f == field => html! {
                <div class="field-error" data-testid={format!("field-error-{field}")}>{ message.clone() }</div>
            },
            _ => html! {},
        }
    };
    let f = &*fields;
    let synthetic = f.agent_type == "synthetic";
    html! {
        <form class="launch" data-testid="launch-form" onsubmit={onsubmit}>
            <h2>{ "Launch" }</h2>
            <label>{ "Type" }
                <select data-testid="launch-type" onchange={set(|f, v| f.agent_type = v)}>
                    <option value="synthetic" selected={synthetic}>{ "synthetic (no credentials)" }</option>
                    <option value="claude-code" selected={!synthetic}>{ "claude-code" }</option>
                </select>
            </label>
            { field_error("type") }
            <label>{ "Prompt" }
                <textarea data-testid="launch-prompt" rows="3" value={f.prompt.clone()} oninput={on_input(|f, v| f.prompt = v)} />
            </label>
            { field_error("prompt") }
            if synthetic {
                <div class="pair">
                    <label>{ "Tokens" }
                        <input data-testid="launch-tokens" inputmode="numeric" value={f.tokens.clone()} oninput={on_input(|f, v| f.tokens = v)} />
                    </label>
                    <label>{ "Interval (ms)" }
                        <input data-testid="launch-interval" inputmode="numeric" value={f.interval.clone()} oninput={on_input(|f, v| f.interval = v)} />
                    </label>
                </div>
                { field_error("tokens") }
                { field_error("interval") }
                <label class="check">
                    <input type="checkbox" data-testid="launch-ask-permission" checked={f.ask_permission} onchange={on_ask_permission} />
                    { "Ask permission for a tool each turn" }
                </label>
            } else {
                <label>{ "Model" }
                    <input data-testid="launch-model" placeholder="default" value={f.model.clone()} oninput={on_input(|f, v| f.model = v)} />
                </label>
                { field_error("model") }
                <label>{ "Working directory" }
                    <input data-testid="launch-cwd" placeholder="the server's folder" value={f.working_directory.clone()} oninput={on_input(|f, v| f.working_directory = v)} />
                </label>
                { field_error("workingDirectory") }
                <div class="pair">
                    <label>{ "Transport" }
                        <select data-testid="launch-transport" onchange={set(|f, v| f.transport = v)}>
                            <option value="" selected={f.transport.is_empty()}>{ "server default" }</option>
                            <option value="cli" selected={f.transport == "cli"}>{ "cli" }</option>
                            <option value="proxy" selected={f.transport == "proxy"}>{ "proxy" }</option>
                        </select>
                    </label>
                    <label>{ "Permissions" }
                        <select data-testid="launch-permission" onchange={set(|f, v| f.permission_mode = v)}>
                            <option value="" selected={f.permission_mode.is_empty()}>{ "default" }</option>
                            <option value="acceptEdits">{ "acceptEdits" }</option>
                            <option value="bypassPermissions">{ "bypassPermissions" }</option>
                            <option value="plan">{ "plan" }</option>
                        </select>
                    </label>
                </div>
                { field_error("permissionMode") }
            }
            { field_error("configuration") }
            if let Some(FieldError { field: None, message }) = &*error {
                <div class="field-error" data-testid="form-error">{ message.clone() }</div>
            }
            <button type="submit" data-testid="launch-submit" disabled={*busy}>{ if *busy { "Launching…" } else { "Launch" } }</button>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_land_on_their_field() {
        let e = |code: &str, message: &str| {
            field_of(&ErrorInfo {
                code: code.into(),
                message: message.into(),
            })
        };
        assert_eq!(
            e("invalid_configuration", "tokens must be between 1 and 5"),
            Some("tokens")
        );
        assert_eq!(
            e("invalid_configuration", "intervalMs must be at most 10"),
            Some("interval")
        );
        assert_eq!(
            e("payload_too_large", "the prompt is 9 bytes"),
            Some("prompt")
        );
        assert_eq!(e("unknown_agent_type", "x"), Some("type"));
        assert_eq!(e("too_many_agents", "64 agents are running"), None);
    }

    #[test]
    fn the_request_follows_the_type() {
        let f = Fields {
            agent_type: "synthetic".into(),
            prompt: "p".into(),
            tokens: "5".into(),
            interval: "".into(),
            model: "ignored".into(),
            ..Fields::default()
        };
        let r = request(&f).ok().unwrap();
        assert_eq!(r.configuration, Some(json!({"tokens": 5})));
        let asking = Fields {
            ask_permission: true,
            ..f.clone()
        };
        assert_eq!(
            request(&asking).ok().unwrap().configuration,
            Some(json!({"tokens": 5, "askPermission": true}))
        );
        let bad = Fields {
            tokens: "five".into(),
            ..f.clone()
        };
        assert!(request(&bad)
            .err()
            .is_some_and(|e| e.field == Some("tokens")));
        let claude = Fields {
            agent_type: "claude-code".into(),
            model: " m ".into(),
            transport: "proxy".into(),
            ..f
        };
        assert_eq!(
            request(&claude).ok().unwrap().configuration,
            Some(json!({"model": "m", "transport": "proxy"}))
        );
    }
}
