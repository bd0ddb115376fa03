//! What is written to an agent that reads Claude Code's `stream-json` input (`--input-format
//! stream-json`): a user's message, the `interrupt` control request, and the answer to a permission
//! request (`can_use_tool`, asked with `--permission-prompt-tool stdio`). The synthetic agent reads the
//! same lines, so every path of a conversation runs without the CLI too.
//!
//! The shapes are the CLI 2.1.330's, captured in `backend/tests/fixtures/claude/` (files 40–67b and
//! their `.stdin.jsonl`): an answer is `{"type":"control_response","response":{"subtype":"success",
//! "request_id", "response": {"behavior":"allow", "updatedInput"?, "updatedPermissions"?} |
//! {"behavior":"deny","message"}}}`; a deny without a message is refused by the CLI.

use agentstream_wire::{PermissionAnswer, PermissionDecision};
use serde_json::{json, Value};

/// A user's message: the next turn's prompt.
pub fn user_line(text: &str) -> String {
    json!({"type": "user", "message": {"role": "user", "content": text}}).to_string()
}

/// Asks the agent to stop its current turn (it ends the turn with an error `result`, and waits for the
/// next message).
pub fn interrupt_line(request_id: &str) -> String {
    json!({"type": "control_request", "request_id": request_id,
           "request": {"subtype": "interrupt"}})
    .to_string()
}

/// What a deny tells the agent when the client gave no reason (the CLI needs one).
const DEFAULT_DENY_MESSAGE: &str = "The user denied this tool call.";

/// The answer to the permission request `request_id` about `tool_name`.
pub fn permission_answer_line(
    request_id: &str,
    tool_name: &str,
    answer: &PermissionAnswer,
) -> String {
    let response = match answer.decision {
        PermissionDecision::Allow => {
            let mut allow = json!({"behavior": "allow"});
            if let Some(input) = &answer.updated_input {
                allow["updatedInput"] = input.clone();
            }
            if answer.always == Some(true) {
                // Every later call of the tool, for the rest of this session (not written to any
                // settings file).
                allow["updatedPermissions"] = json!([{
                    "type": "addRules",
                    "rules": [{"toolName": tool_name}],
                    "behavior": "allow",
                    "destination": "session",
                }]);
            }
            allow
        }
        PermissionDecision::Deny => json!({
            "behavior": "deny",
            "message": answer
                .message
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or(DEFAULT_DENY_MESSAGE),
        }),
    };
    json!({"type": "control_response",
           "response": {"subtype": "success", "request_id": request_id, "response": response}})
    .to_string()
}

/// One line an agent reads, as the synthetic agent understands it.
#[derive(Clone, Debug, PartialEq)]
pub enum InputLine {
    /// A user's message (its text).
    User(String),
    /// `interrupt`, with its request id.
    Interrupt(String),
    /// An answer to a permission request: its id, and whether the tool may run (with the deny's
    /// message).
    PermissionAnswer {
        request_id: String,
        allow: bool,
        message: Option<String>,
    },
    /// Anything else (ignored).
    Other,
}

/// Reads a line written by [`user_line`], [`interrupt_line`] or [`permission_answer_line`].
pub fn read_input_line(line: &str) -> InputLine {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return InputLine::Other;
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match value.get("type").and_then(Value::as_str) {
        Some("user") => {
            let content = &value["message"]["content"];
            let prompt = match content {
                Value::String(s) => s.clone(),
                Value::Array(blocks) => blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            InputLine::User(prompt)
        }
        Some("control_request") if value["request"]["subtype"] == "interrupt" => {
            InputLine::Interrupt(text(&value["request_id"]).unwrap_or_default())
        }
        Some("control_response") => {
            let response = &value["response"];
            match text(&response["request_id"]) {
                Some(request_id) => InputLine::PermissionAnswer {
                    request_id,
                    allow: response["subtype"] == "success"
                        && response["response"]["behavior"] == "allow",
                    message: text(&response["response"]["message"]),
                },
                None => InputLine::Other,
            }
        }
        _ => InputLine::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(decision: PermissionDecision) -> PermissionAnswer {
        PermissionAnswer {
            decision,
            message: None,
            updated_input: None,
            always: None,
        }
    }

    #[test]
    fn the_lines_written_are_the_lines_read() {
        assert_eq!(
            read_input_line(&user_line("hi \"there\"")),
            InputLine::User("hi \"there\"".into())
        );
        assert_eq!(
            read_input_line(&interrupt_line("r7")),
            InputLine::Interrupt("r7".into())
        );
        let deny = permission_answer_line("p1", "Bash", &answer(PermissionDecision::Deny));
        assert_eq!(
            read_input_line(&deny),
            InputLine::PermissionAnswer {
                request_id: "p1".into(),
                allow: false,
                message: Some(DEFAULT_DENY_MESSAGE.into())
            }
        );
        assert_eq!(read_input_line("not json"), InputLine::Other);
    }

    #[test]
    fn an_answer_has_the_shape_the_cli_takes() {
        let allow = PermissionAnswer {
            updated_input: Some(json!({"command": "ls"})),
            always: Some(true),
            ..answer(PermissionDecision::Allow)
        };
        let line: Value =
            serde_json::from_str(&permission_answer_line("id-1", "Bash", &allow)).unwrap();
        assert_eq!(
            line,
            json!({"type": "control_response", "response": {"subtype": "success", "request_id": "id-1",
                "response": {"behavior": "allow", "updatedInput": {"command": "ls"},
                    "updatedPermissions": [{"type": "addRules", "rules": [{"toolName": "Bash"}],
                        "behavior": "allow", "destination": "session"}]}}})
        );
        let deny = PermissionAnswer {
            message: Some("not that".into()),
            ..answer(PermissionDecision::Deny)
        };
        let line: Value =
            serde_json::from_str(&permission_answer_line("id-2", "Bash", &deny)).unwrap();
        assert_eq!(
            line["response"]["response"],
            json!({"behavior": "deny", "message": "not that"})
        );
    }
}
