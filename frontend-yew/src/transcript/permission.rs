//! The conversation's own blocks: the user's follow-ups (each starts a turn) and the agent's permission
//! requests as cards, marked answered by the answer (from any client) or "no longer waiting" once their
//! turn ends without one (a `result`, or the agent withdrawing the request).
//!
//! Whether a card can be answered also depends on the agent's status, which the transcript does not
//! hold: [`card_state`] decides it from both. Plain Rust: tested natively.

use agentstream_wire::{keys, PermissionDecision, StoredMessage};
use serde_json::Value;

use super::{meta_str, BlockKind, Transcript};

/// A permission request of the agent and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct PermissionCard {
    /// The agent's id for the request (the answer's URL names it).
    pub request_id: String,
    /// The tool it asks to run.
    pub tool_name: String,
    /// The tool's input, pretty-printed JSON.
    pub input: String,
    pub outcome: Outcome,
}

/// What became of a permission request.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Not answered, and its turn goes on.
    Waiting,
    /// A client answered it.
    Answered(Answer),
    /// Its turn ended without an answer.
    Ended,
}

/// A stored answer, as its `permission_response` message says it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// `allow` or `deny` (or a decision a newer server knows: shown as it is).
    pub decision: String,
    /// Also every later call of the tool, for the rest of the session.
    pub always: bool,
    /// The note sent with it.
    pub message: Option<String>,
}

impl Answer {
    /// What the card says of it.
    pub fn label(&self) -> String {
        let said = match self.decision.parse::<PermissionDecision>() {
            Ok(PermissionDecision::Allow) if self.always => "Always allowed".to_owned(),
            Ok(PermissionDecision::Allow) => "Allowed".to_owned(),
            Ok(PermissionDecision::Deny) => "Denied".to_owned(),
            Err(_) => format!("Answered {}", self.decision),
        };
        match &self.message {
            Some(m) if !m.trim().is_empty() => format!("{said}: {m}"),
            _ => said,
        }
    }

    /// True for an `allow`.
    pub fn allowed(&self) -> bool {
        self.decision == PermissionDecision::Allow.as_str()
    }
}

/// What a card offers now.
#[derive(Clone, Debug, PartialEq)]
pub enum CardState<'a> {
    /// Allow / Deny: it waits, and the agent's turn is under way.
    Answerable,
    /// Answered: its decision, no buttons.
    Answered(&'a Answer),
    /// Not answered, and never will be: its turn ended (or the agent's status says no turn runs).
    NoLongerWaiting,
}

/// What `card` offers, given whether the agent's turn is under way (`AgentStatus::is_active`; `false`
/// while the status is not known yet).
pub fn card_state(card: &PermissionCard, agent_active: bool) -> CardState<'_> {
    match &card.outcome {
        Outcome::Answered(a) => CardState::Answered(a),
        Outcome::Waiting if agent_active => CardState::Answerable,
        Outcome::Waiting | Outcome::Ended => CardState::NoLongerWaiting,
    }
}

/// A tool's input (JSON text or a value), pretty when it is JSON.
pub fn pretty(input: &str) -> String {
    serde_json::from_str::<Value>(input)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| input.to_owned())
}

impl Transcript {
    /// A follow-up: the user's turn.
    pub(super) fn user_input(&mut self, m: &StoredMessage) {
        self.push_block(
            m,
            BlockKind::Prompt {
                text: m.content.clone(),
                origin: meta_str(m, keys::ORIGIN),
            },
        );
        self.open_text = None;
    }

    /// A permission request: a card that waits for its answer.
    pub(super) fn permission_request(&mut self, m: &StoredMessage) {
        let input = match m.metadata.get(keys::INPUT) {
            Some(Value::String(s)) => pretty(s),
            Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
            None => String::new(),
        };
        let card = PermissionCard {
            request_id: meta_str(m, keys::REQUEST_ID).unwrap_or_default(),
            tool_name: meta_str(m, keys::TOOL_NAME).unwrap_or_else(|| m.content.clone()),
            input,
            outcome: Outcome::Waiting,
        };
        let request_id = card.request_id.clone();
        let i = self.push_block(m, BlockKind::Permission(card));
        self.permissions.insert(request_id, i);
        self.open_text = None;
    }

    /// An answer: marks its card (a line of its own when the request is not in the transcript).
    pub(super) fn permission_response(&mut self, m: &StoredMessage) {
        let answer = Answer {
            decision: meta_str(m, keys::DECISION).unwrap_or_default(),
            always: m
                .metadata
                .get(keys::ALWAYS)
                .and_then(Value::as_bool)
                .unwrap_or(false),
            message: meta_str(m, keys::MESSAGE),
        };
        let card = meta_str(m, keys::REQUEST_ID).and_then(|id| self.permissions.get(&id).copied());
        match card {
            Some(i) => self.update(i, m, |k| {
                if let BlockKind::Permission(card) = k {
                    card.outcome = Outcome::Answered(answer);
                }
            }),
            None => {
                self.push_block(
                    m,
                    BlockKind::User {
                        text: m.content.clone(),
                    },
                );
            }
        }
    }

    /// The turn ended (`result`): every card still waiting will never be answered.
    pub(super) fn end_waiting_cards(&mut self) {
        let waiting: Vec<usize> = self
            .permissions
            .values()
            .copied()
            .filter(|&i| self.card_is_waiting(i))
            .collect();
        for i in waiting {
            self.end_card(i);
        }
    }

    /// The agent withdrew request `request_id` (`control_cancel_request`).
    pub(super) fn withdraw(&mut self, request_id: &str) {
        if let Some(i) = self.permissions.get(request_id).copied() {
            if self.card_is_waiting(i) {
                self.end_card(i);
            }
        }
    }

    fn card_is_waiting(&self, i: usize) -> bool {
        matches!(
            &self.blocks[i].borrow().kind,
            BlockKind::Permission(PermissionCard {
                outcome: Outcome::Waiting,
                ..
            })
        )
    }

    /// Marks card `i` ended (a change of the card only: its messages stay the same).
    fn end_card(&mut self, i: usize) {
        let version = self.bump();
        let mut b = self.blocks[i].borrow_mut();
        if let BlockKind::Permission(card) = &mut b.kind {
            card.outcome = Outcome::Ended;
        }
        b.version = version;
    }

    /// The latest request still waiting for an answer: `(requestId, toolName)`.
    pub fn waiting_permission(&self) -> Option<(String, String)> {
        self.permissions
            .values()
            .copied()
            .filter(|&i| self.card_is_waiting(i))
            .max()
            .and_then(|i| match &self.blocks[i].borrow().kind {
                BlockKind::Permission(card) => {
                    Some((card.request_id.clone(), card.tool_name.clone()))
                }
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::MessageType;
    use serde_json::json;
    use uuid::Uuid;

    fn message(seq: i64, kind: MessageType, content: &str, metadata: Value) -> StoredMessage {
        StoredMessage {
            id: Uuid::from_u128(seq as u128),
            agent_id: Uuid::nil(),
            sequence_number: seq,
            message_type: kind,
            role: None,
            content: content.into(),
            raw: Some("{}".into()),
            metadata,
            created_at: String::new(),
        }
    }

    fn request(seq: i64, id: &str) -> StoredMessage {
        message(
            seq,
            MessageType::Tool,
            "Bash",
            json!({"eventType": "permission_request", "requestId": id, "toolName": "Bash",
                   "input": {"command": "echo turn 1", "description": "Print"}, "toolUseId": "t1"}),
        )
    }

    fn response(seq: i64, id: &str, extra: Value) -> StoredMessage {
        let mut metadata = json!({"eventType": "permission_response", "requestId": id,
                                  "toolName": "Bash", "decision": "allow"});
        if let (Value::Object(m), Value::Object(e)) = (&mut metadata, extra) {
            m.extend(e);
        }
        message(seq, MessageType::User, "allow Bash", metadata)
    }

    fn result(seq: i64) -> StoredMessage {
        message(
            seq,
            MessageType::Result,
            "done",
            json!({"eventType": "result", "isError": false}),
        )
    }

    fn cards(t: &Transcript) -> Vec<PermissionCard> {
        t.blocks()
            .iter()
            .filter_map(|b| match &b.borrow().kind {
                BlockKind::Permission(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_follow_up_is_a_user_turn_that_ends_the_open_text() {
        let mut t = Transcript::new();
        t.apply(&message(
            1,
            MessageType::Assistant,
            "first",
            json!({"eventType": "content_delta"}),
        ));
        t.apply(&message(
            2,
            MessageType::User,
            "and now?",
            json!({"eventType": "user_input"}),
        ));
        t.apply(&message(
            3,
            MessageType::Assistant,
            "second",
            json!({"eventType": "content_delta"}),
        ));
        t.apply(&message(
            4,
            MessageType::User,
            "go on",
            json!({"eventType": "user_input", "origin": "restart"}),
        ));
        let kinds: Vec<BlockKind> = t.blocks().iter().map(|b| b.borrow().kind.clone()).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(
            kinds[1],
            BlockKind::Prompt {
                text: "and now?".into(),
                origin: None
            }
        );
        assert!(matches!(&kinds[2], BlockKind::Text { text, .. } if text == "second"));
        assert_eq!(
            kinds[3],
            BlockKind::Prompt {
                text: "go on".into(),
                origin: Some("restart".into())
            }
        );
    }

    #[test]
    fn a_request_is_a_waiting_card_with_its_tool_and_pretty_input() {
        let mut t = Transcript::new();
        t.apply(&request(1, "r1"));
        let card = &cards(&t)[0];
        assert_eq!(card.request_id, "r1");
        assert_eq!(card.tool_name, "Bash");
        assert_eq!(
            card.input,
            "{\n  \"command\": \"echo turn 1\",\n  \"description\": \"Print\"\n}"
        );
        assert_eq!(card.outcome, Outcome::Waiting);
        assert_eq!(card_state(card, true), CardState::Answerable);
        assert_eq!(
            t.waiting_permission(),
            Some(("r1".to_owned(), "Bash".to_owned()))
        );
    }

    #[test]
    fn an_answer_marks_its_card_and_removes_the_buttons() {
        let mut t = Transcript::new();
        t.apply(&request(1, "r1"));
        let before = t.blocks()[0].borrow().version;
        t.apply(&response(2, "r1", json!({"always": true})));
        assert_eq!(t.blocks().len(), 1, "the answer is shown on the card");
        assert!(t.blocks()[0].borrow().version > before);
        let card = &cards(&t)[0];
        let Outcome::Answered(answer) = &card.outcome else {
            panic!("{card:?}")
        };
        assert!(answer.allowed());
        assert_eq!(answer.label(), "Always allowed");
        assert_eq!(card_state(card, true), CardState::Answered(answer));
        assert_eq!(t.waiting_permission(), None);
        // A later result does not change an answered card.
        t.apply(&result(3));
        assert!(matches!(cards(&t)[0].outcome, Outcome::Answered(_)));
    }

    #[test]
    fn a_denial_says_why() {
        let mut t = Transcript::new();
        t.apply(&request(1, "r1"));
        t.apply(&response(
            2,
            "r1",
            json!({"decision": "deny", "message": "not now"}),
        ));
        let Outcome::Answered(answer) = &cards(&t)[0].outcome else {
            panic!()
        };
        assert!(!answer.allowed());
        assert_eq!(answer.label(), "Denied: not now");
    }

    #[test]
    fn a_card_whose_turn_ended_is_no_longer_waiting() {
        let mut t = Transcript::new();
        t.apply(&request(1, "r1"));
        t.apply(&result(2));
        let card = &cards(&t)[0];
        assert_eq!(card.outcome, Outcome::Ended);
        assert_eq!(card_state(card, true), CardState::NoLongerWaiting);
        assert_eq!(t.waiting_permission(), None);
        // The next turn's request waits on its own.
        t.apply(&request(3, "r2"));
        assert_eq!(
            t.waiting_permission(),
            Some(("r2".to_owned(), "Bash".to_owned()))
        );
    }

    #[test]
    fn a_withdrawn_request_is_no_longer_waiting() {
        let mut t = Transcript::new();
        t.apply(&request(1, "r1"));
        t.apply(&message(
            2,
            MessageType::System,
            "the agent withdrew its request",
            json!({"eventType": "system", "subtype": "control_cancel_request", "requestId": "r1"}),
        ));
        assert_eq!(cards(&t)[0].outcome, Outcome::Ended);
        assert_eq!(t.blocks().len(), 2, "the withdrawal is also a quiet line");
    }

    #[test]
    fn a_waiting_card_is_answerable_only_while_the_agent_is_active() {
        let mut t = Transcript::new();
        t.apply(&request(1, "r1"));
        let card = &cards(&t)[0];
        assert_eq!(card_state(card, false), CardState::NoLongerWaiting);
        assert_eq!(card_state(card, true), CardState::Answerable);
    }

    #[test]
    fn an_answer_to_an_unknown_request_is_a_line_of_its_own() {
        let mut t = Transcript::new();
        t.apply(&response(1, "nowhere", json!({})));
        assert_eq!(
            t.blocks()[0].borrow().kind,
            BlockKind::User {
                text: "allow Bash".into()
            }
        );
    }

    #[test]
    fn decisions_a_newer_server_knows_are_shown_as_they_are() {
        let a = Answer {
            decision: "ask_later".into(),
            always: false,
            message: None,
        };
        assert_eq!(a.label(), "Answered ask_later");
        assert!(!a.allowed());
    }
}
