//! The protocol's closed sets of names (agent types, statuses, message types): each an enum whose
//! variants serialize as their protocol name, with `as_str`, `Display`, `FromStr` and `ALL` written
//! once, by [`protocol_names!`].

use std::fmt;

/// Declares an enum of protocol names: each variant with its name as the protocol spells it. Gives the
/// enum serde (as that name), `ALL` (every variant, in order), `as_str`, `Display` and `FromStr`
/// (failing with [`UnknownName`]).
macro_rules! protocol_names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The protocol's name of the variant.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        // The schema by hand: utoipa's derive does not see a `rename` whose value is a macro fragment,
        // and would list the variants' Rust names.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::UnknownName(s.to_owned()))
            }
        }
    };
}

pub(crate) use protocol_names;

/// A name that is not one of an enum's protocol names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name {:?}", self.0)
    }
}

impl std::error::Error for UnknownName {}

protocol_names! {
    /// Which kind of agent runs: decides the runner the backend starts.
    pub enum AgentType {
        /// Needs no credentials: streams generated tokens through the real pipeline.
        Synthetic = "synthetic",
        /// Claude Code (`claude -p … --output-format stream-json`).
        ClaudeCode = "claude-code",
        /// Gemini CLI (`gemini -o stream-json`).
        GeminiCli = "gemini-cli",
        /// OpenAI's Codex CLI (`codex app-server`).
        Codex = "codex",
    }
}

protocol_names! {
    /// Lifecycle of an agent: `initializing` → `running` → a terminal status.
    pub enum AgentStatus {
        Initializing = "initializing",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Terminated = "terminated",
        /// Its turn was interrupted (`POST …/interrupt`), or it was running when its server stopped.
        Interrupted = "interrupted",
        /// It waits for a client to allow or deny a tool call (`POST …/permissions/{requestId}`).
        AwaitingPermission = "awaiting_permission",
    }
}

impl AgentStatus {
    /// True once the agent's turn has ended: it produces no more messages until a follow-up
    /// (`POST …/messages`) starts the next turn.
    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// True while a turn is under way: starting, streaming, or waiting for a permission answer.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            AgentStatus::Initializing | AgentStatus::Running | AgentStatus::AwaitingPermission
        )
    }
}

protocol_names! {
    /// The kind of a stored message.
    pub enum MessageType {
        Assistant = "assistant",
        User = "user",
        System = "system",
        Tool = "tool",
        Result = "result",
        Error = "error",
    }
}

protocol_names! {
    /// How a `claude-code` agent reaches the Claude CLI.
    pub enum ClaudeTransport {
        /// The server spawns the CLI itself.
        Cli = "cli",
        /// The server streams from a proxy that spawns it (`POST {proxyUrl}/agent/stream`, SSE).
        Proxy = "proxy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in AgentType::ALL {
            assert_eq!(t.as_str().parse::<AgentType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in AgentStatus::ALL {
            assert_eq!(s.as_str().parse::<AgentStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for m in MessageType::ALL {
            assert_eq!(m.as_str().parse::<MessageType>().unwrap(), m);
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert!("gemini".parse::<AgentType>().is_err());
        assert_eq!(
            "Running".parse::<AgentStatus>(),
            Err(UnknownName("Running".into()))
        );
        assert_eq!(ClaudeTransport::ALL.len(), 2);
        assert!(AgentStatus::AwaitingPermission.is_active());
        assert!(AgentStatus::Interrupted.is_terminal());
    }
}
