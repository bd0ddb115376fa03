//! The launch form: a type, a prompt, and that type's options, all as the server describes them
//! (`GET /api/agent-types`), so a type the server adds shows up here with its options and a type it
//! cannot run says why. The server's validation errors appear next to the field they concern.

use std::collections::BTreeMap;

use agentstream_wire::{
    Agent, AgentOption, AgentTypeInfo, CreateAgentRequest, ErrorInfo, OptionKind,
};
use serde_json::{json, Map, Value};
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::api;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub on_launched: Callback<Agent>,
}

/// How many of a type's options show before "More options" (the server lists the common ones first).
const SHOWN_OPTIONS: usize = 4;

/// The form's fields, as typed.
#[derive(Clone, Default, PartialEq)]
struct Fields {
    agent_type: String,
    prompt: String,
    /// What was typed for each option, by option name (a checkbox: `"true"` or `""`). An option never
    /// touched shows its default.
    values: BTreeMap<String, String>,
}

impl Fields {
    /// What the field of `option` holds.
    fn value(&self, option: &AgentOption) -> String {
        match self.values.get(&option.name) {
            Some(typed) => typed.clone(),
            None => match &option.default {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(true)) => "true".to_owned(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            },
        }
    }
}

/// An error and the field it belongs to: `type`, `prompt`, an option's name, `configuration` (the
/// options as a whole), or `None` (the form as a whole).
#[derive(Clone, Debug, PartialEq)]
struct FieldError {
    field: Option<String>,
    message: String,
}

/// Which field a server error is about: for a bad configuration, the option its message names (the
/// longest name that appears, so `allowedTools` wins over a shorter name inside it).
fn field_of(error: &ErrorInfo, info: Option<&AgentTypeInfo>) -> Option<String> {
    let m = error.message.as_str();
    match error.code.as_str() {
        "unknown_agent_type" | "agent_type_unavailable" => Some("type".into()),
        "payload_too_large" | "invalid_body" if m.contains("prompt") => Some("prompt".into()),
        "invalid_configuration" => Some(
            info.into_iter()
                .flat_map(|i| &i.options)
                .filter(|o| m.contains(o.name.as_str()))
                .max_by_key(|o| o.name.len())
                .map_or_else(|| "configuration".to_owned(), |o| o.name.clone()),
        ),
        _ => None,
    }
}

/// The configuration value of one option's raw text; `None` when it is left empty.
fn option_value(option: &AgentOption, raw: &str) -> Result<Option<Value>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let wrong = |message: String| FieldError {
        field: Some(option.name.clone()),
        message,
    };
    Ok(Some(match option.kind {
        OptionKind::Number => raw
            .parse::<u64>()
            .map(|n| json!(n))
            .map_err(|_| wrong(format!("{raw:?} is not a whole number")))?,
        OptionKind::Boolean => json!(raw == "true"),
        OptionKind::List => json!(raw
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()),
        // A JSON object or array as typed; anything else (a path) as text.
        OptionKind::Json if raw.starts_with(['{', '[']) => {
            serde_json::from_str(raw).map_err(|e| wrong(format!("not valid JSON: {e}")))?
        }
        _ => json!(raw),
    }))
}

/// The request the fields make for the type `info` describes, or the field that is wrong.
fn request(f: &Fields, info: &AgentTypeInfo) -> Result<CreateAgentRequest, FieldError> {
    let mut config = Map::new();
    for option in &info.options {
        if let Some(value) = option_value(option, &f.value(option))? {
            config.insert(option.name.clone(), value);
        }
    }
    Ok(CreateAgentRequest {
        agent_type: f.agent_type.clone(),
        prompt: f.prompt.clone(),
        configuration: Some(Value::Object(config)),
    })
}

/// `intervalMs` → `interval-ms`: an option's part of its element's `data-testid`.
fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn value_of(e: &Event) -> String {
    let target = e.target();
    if let Some(i) = target
        .as_ref()
        .and_then(|t| t.dyn_ref::<web_sys::HtmlInputElement>())
    {
        if i.type_() == "checkbox" {
            return if i.checked() { "true" } else { "" }.to_owned();
        }
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
        values: BTreeMap::from([("tokens".into(), "200".into())]),
    });
    let types = use_state(|| None::<Result<Vec<AgentTypeInfo>, ErrorInfo>>);
    let error = use_state(|| None::<FieldError>);
    let busy = use_state(|| false);

    let load = {
        let types = types.clone();
        Callback::from(move |_: ()| {
            let types = types.clone();
            types.set(None);
            wasm_bindgen_futures::spawn_local(async move {
                types.set(Some(api::agent_types().await));
            });
        })
    };
    {
        let load = load.clone();
        use_effect_with((), move |_| load.emit(()));
    }

    let info: Option<AgentTypeInfo> = match &*types {
        Some(Ok(list)) => list
            .iter()
            .find(|t| t.agent_type == fields.agent_type)
            .cloned(),
        _ => None,
    };

    let update = |change: fn(&mut Fields, String)| {
        let fields = fields.clone();
        Callback::from(move |value: String| {
            let mut next = (*fields).clone();
            change(&mut next, value);
            fields.set(next);
        })
    };
    let on_type = update(|f, v| f.agent_type = v);
    let on_prompt = update(|f, v| f.prompt = v);

    let onsubmit = {
        let fields = fields.clone();
        let error = error.clone();
        let busy = busy.clone();
        let info = info.clone();
        let on_launched = props.on_launched.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(info) = info.clone() else {
                return;
            };
            let req = match request(&fields, &info) {
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
                        field: field_of(&e, Some(&info)),
                        message: e.message,
                    })),
                }
                busy.set(false);
            });
        })
    };

    let field_error = |field: &str| -> Html {
        match &*error {
            Some(FieldError {
                field: Some(f),
                message,
            }) if f == field => html! {
                <div class="field-error" data-testid={format!("field-error-{field}")}>{ message.clone() }</div>
            },
            _ => html! {},
        }
    };
    let option_field = |option: &AgentOption| -> Html {
        let name = option.name.clone();
        let testid = format!("launch-{}", kebab(&option.name));
        let value = fields.value(option);
        let changed = {
            let fields = fields.clone();
            let name = name.clone();
            Callback::from(move |e: Event| {
                let mut next = (*fields).clone();
                next.values.insert(name.clone(), value_of(&e));
                fields.set(next);
            })
        };
        let typed = {
            let changed = changed.clone();
            Callback::from(move |e: InputEvent| changed.emit(e.into()))
        };
        let control = match option.kind {
            OptionKind::Boolean => {
                return html! {
                    <>
                        <label class="check" title={option.description.clone()}>
                            <input type="checkbox" data-testid={testid} checked={value == "true"} onchange={changed} />
                            { option.label.clone() }
                        </label>
                        { field_error(&name) }
                    </>
                }
            }
            OptionKind::Choice => html! {
                <select data-testid={testid} onchange={changed}>
                    <option value="" selected={value.is_empty()}>{ "default" }</option>
                    { for option.choices.iter().map(|c| html! {
                        <option value={c.clone()} selected={*c == value}>{ c.clone() }</option>
                    }) }
                </select>
            },
            OptionKind::List => html! {
                <textarea data-testid={testid} rows="2" placeholder="one per line" value={value} oninput={typed} />
            },
            OptionKind::Number => html! {
                <input data-testid={testid} inputmode="numeric" placeholder="default" value={value} oninput={typed} />
            },
            _ => html! {
                <input data-testid={testid} placeholder="default" value={value} oninput={typed} />
            },
        };
        html! {
            <>
                <label title={option.description.clone()}>{ option.label.clone() }{ control }</label>
                { field_error(&name) }
            </>
        }
    };

    let f = &*fields;
    let type_select = match &*types {
        Some(Ok(list)) => html! {
            <select data-testid="launch-type" onchange={Callback::from(move |e: Event| on_type.emit(value_of(&e)))}>
                { for list.iter().map(|t| html! {
                    <option value={t.agent_type.clone()} selected={t.agent_type == f.agent_type}>
                        { if t.available { t.label.clone() } else { format!("{} (not available)", t.label) } }
                    </option>
                }) }
            </select>
        },
        Some(Err(e)) => html! {
            <div class="field-error" data-testid="types-error">
                { format!("The agent types could not be loaded: {}", e.message) }
                <button type="button" onclick={load.reform(|_| ())}>{ "Retry" }</button>
            </div>
        },
        None => {
            html! { <select data-testid="launch-type" disabled=true><option>{ "Loading…" }</option></select> }
        }
    };
    let (shown, more) = match &info {
        Some(i) => i.options.split_at(i.options.len().min(SHOWN_OPTIONS)),
        None => (&[][..], &[][..]),
    };
    let unavailable = info.as_ref().and_then(|i| i.unavailable_reason.clone());
    html! {
        <form class="launch" data-testid="launch-form" onsubmit={onsubmit}>
            <h2>{ "Launch" }</h2>
            <label>{ "Type" }{ type_select }</label>
            if let Some(reason) = &unavailable {
                <div class="field-error" data-testid="type-unavailable">{ reason.clone() }</div>
            }
            { field_error("type") }
            <label>{ "Prompt" }
                <textarea data-testid="launch-prompt" rows="3" value={f.prompt.clone()}
                    oninput={Callback::from(move |e: InputEvent| on_prompt.emit(value_of(&e)))} />
            </label>
            { field_error("prompt") }
            { for shown.iter().map(option_field) }
            if !more.is_empty() {
                <details class="more-options">
                    <summary>{ "More options" }</summary>
                    { for more.iter().map(option_field) }
                </details>
            }
            { field_error("configuration") }
            if let Some(FieldError { field: None, message }) = &*error {
                <div class="field-error" data-testid="form-error">{ message.clone() }</div>
            }
            <button type="submit" data-testid="launch-submit" disabled={*busy || info.is_none() || unavailable.is_some()}>
                { if *busy { "Launching…" } else { "Launch" } }
            </button>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(name: &str, kind: OptionKind) -> AgentOption {
        AgentOption {
            name: name.into(),
            label: name.into(),
            kind,
            description: String::new(),
            choices: Vec::new(),
            default: None,
        }
    }

    fn info(agent_type: &str, options: Vec<AgentOption>) -> AgentTypeInfo {
        AgentTypeInfo {
            agent_type: agent_type.into(),
            label: agent_type.into(),
            description: String::new(),
            available: true,
            unavailable_reason: None,
            conversations: true,
            prompt_required: true,
            options,
        }
    }

    fn fields(agent_type: &str, values: &[(&str, &str)]) -> Fields {
        Fields {
            agent_type: agent_type.into(),
            prompt: "p".into(),
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn errors_land_on_their_field() {
        let claude = info(
            "claude-code",
            vec![
                option("model", OptionKind::Text),
                option("allowedTools", OptionKind::List),
                option("tools", OptionKind::List),
            ],
        );
        let e = |code: &str, message: &str| {
            field_of(
                &ErrorInfo {
                    code: code.into(),
                    message: message.into(),
                },
                Some(&claude),
            )
        };
        assert_eq!(
            e("invalid_configuration", "model \"x;\" is not a model name").as_deref(),
            Some("model")
        );
        assert_eq!(
            e("invalid_configuration", "allowedTools has 201 entries").as_deref(),
            Some("allowedTools")
        );
        assert_eq!(
            e("invalid_configuration", "unknown field `x`").as_deref(),
            Some("configuration")
        );
        assert_eq!(
            e("payload_too_large", "the prompt is 9 bytes").as_deref(),
            Some("prompt")
        );
        assert_eq!(e("agent_type_unavailable", "x").as_deref(), Some("type"));
        assert_eq!(e("too_many_agents", "64 agents are running"), None);
    }

    #[test]
    fn the_request_holds_the_options_of_its_type_as_typed() {
        let mut tokens = option("tokens", OptionKind::Number);
        tokens.default = Some(json!(50));
        let synthetic = info(
            "synthetic",
            vec![
                tokens,
                option("intervalMs", OptionKind::Number),
                option("askPermission", OptionKind::Boolean),
            ],
        );
        // A default shows and is sent; an option of another type is not.
        let r = request(&fields("synthetic", &[("model", "m")]), &synthetic).unwrap();
        assert_eq!(r.configuration, Some(json!({"tokens": 50})));
        let r = request(
            &fields(
                "synthetic",
                &[
                    ("tokens", "5"),
                    ("intervalMs", " "),
                    ("askPermission", "true"),
                ],
            ),
            &synthetic,
        )
        .unwrap();
        assert_eq!(
            r.configuration,
            Some(json!({"tokens": 5, "askPermission": true}))
        );
        let bad = request(&fields("synthetic", &[("tokens", "five")]), &synthetic).err();
        assert!(bad.is_some_and(|e| e.field.as_deref() == Some("tokens")));

        let gemini = info(
            "gemini-cli",
            vec![
                option("model", OptionKind::Text),
                option("includeDirectories", OptionKind::List),
                option("mcp", OptionKind::Json),
            ],
        );
        let r = request(
            &fields(
                "gemini-cli",
                &[
                    ("model", " m "),
                    ("includeDirectories", "/a\n\n /b \n"),
                    ("mcp", r#"{"mcpServers": {}}"#),
                ],
            ),
            &gemini,
        )
        .unwrap();
        assert_eq!(
            r.configuration,
            Some(
                json!({"model": "m", "includeDirectories": ["/a", "/b"], "mcp": {"mcpServers": {}}})
            )
        );
        let path = request(&fields("gemini-cli", &[("mcp", "/etc/mcp.json")]), &gemini).unwrap();
        assert_eq!(path.configuration, Some(json!({"mcp": "/etc/mcp.json"})));
    }

    #[test]
    fn option_names_become_test_ids() {
        assert_eq!(kebab("intervalMs"), "interval-ms");
        assert_eq!(kebab("askPermission"), "ask-permission");
        assert_eq!(kebab("model"), "model");
    }
}
