//! How each transcript block looks. A block re-renders only when its version changes (or, for the
//! permission cards it holds, when the agent's turn starts or ends).

use std::rc::Rc;

use agentstream_wire::StoredMessage;
use uuid::Uuid;
use yew::prelude::*;

use crate::permission_card::PermissionCardView;
use crate::time;
use crate::transcript::{pretty, BlockKind, BlockRef};

#[derive(Properties)]
pub struct BlockProps {
    pub block: BlockRef,
    /// The block's version when rendered: a new one re-renders it.
    pub version: u64,
    /// The agent's turn is under way: a waiting permission card can be answered.
    pub active: bool,
    pub agent: Uuid,
    /// Takes a message the server answered with (a permission answer, as stored).
    pub on_message: Callback<StoredMessage>,
}

impl PartialEq for BlockProps {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.active == other.active
            && self.agent == other.agent
            && Rc::ptr_eq(&self.block, &other.block)
    }
}

#[function_component(BlockView)]
pub fn block_view(props: &BlockProps) -> Html {
    let b = props.block.borrow();
    let seq = if b.first_sequence == b.last_sequence {
        format!("#{}", b.first_sequence)
    } else {
        format!("#{}–{}", b.first_sequence, b.last_sequence)
    };
    let meta = html! {
        <div class="meta" title={b.raw.clone()}>{ format!("{} · {} · {}", b.message_type.as_str(), time::clock(&b.created_at), seq) }</div>
    };
    match &b.kind {
        BlockKind::Text { text, .. } => html! {
            <div class="block turn assistant">{ meta }<div class="text" data-testid="assistant-text">{ text.clone() }</div></div>
        },
        BlockKind::Thinking { text } => html! {
            <details class="block thinking"><summary>{ "thinking" }</summary>{ meta }<pre>{ text.clone() }</pre></details>
        },
        BlockKind::Tool {
            name,
            input,
            result,
            is_error,
        } => html! {
            <details class={classes!("block", "tool", is_error.then_some("failed"))} data-testid="tool-card" open={result.is_none()}>
                <summary>
                    <span class="tool-name">{ name.clone() }</span>
                    <span class="tool-state">{ match (result, is_error) {
                        (None, _) if props.active => "running…",
                        (None, _) => "no result",
                        (Some(_), true) => "error",
                        (Some(_), false) => "done",
                    } }</span>
                </summary>
                { meta }
                if !input.is_empty() { <pre class="input">{ pretty(input) }</pre> }
                if let Some(r) = result { <pre class="output">{ r.clone() }</pre> }
            </details>
        },
        BlockKind::User { text } => {
            html! { <div class="block turn user">{ meta }<div class="text">{ text.clone() }</div></div> }
        }
        BlockKind::Prompt { text, origin } => html! {
            <div class="block user-turn" data-testid="user-turn" data-sequence={b.first_sequence.to_string()}>
                <div class="meta" title={b.raw.clone()}>
                    <span class="who">{ "you" }</span>
                    { format!(" · {} · {}", time::clock(&b.created_at), seq) }
                    if origin.as_deref() == Some("restart") { <span class="origin">{ " · sent by the server after a restart" }</span> }
                </div>
                <div class="text" data-testid="user-turn-text">{ text.clone() }</div>
            </div>
        },
        BlockKind::Permission(card) => html! {
            <PermissionCardView card={card.clone()} active={props.active} agent={props.agent}
                                on_message={props.on_message.clone()} meta={meta} />
        },
        BlockKind::System { subtype, text } => html! {
            <div class="block system" title={b.raw.clone()}><span class="subtype">{ subtype.clone() }</span>{ " " }{ text.clone() }</div>
        },
        BlockKind::Error { text } => {
            html! { <div class="block error-line">{ meta }{ text.clone() }</div> }
        }
        BlockKind::Result {
            text,
            is_error,
            interrupted,
            cost_usd,
            output_tokens,
            duration_ms,
            num_turns,
        } => {
            let mut parts = vec![match (interrupted, is_error) {
                (true, _) => "■ interrupted".to_owned(),
                (false, true) => "✗ failed".to_owned(),
                (false, false) => "✓ done".to_owned(),
            }];
            if let Some(c) = cost_usd {
                parts.push(format!("${c:.4}"));
            }
            if let Some(t) = output_tokens {
                parts.push(format!("{t} tokens"));
            }
            if let Some(d) = duration_ms {
                parts.push(time::duration(*d));
            }
            if let Some(n) = num_turns {
                parts.push(format!("{n} turn{}", if *n == 1 { "" } else { "s" }));
            }
            html! {
                <div class={classes!("block", "result", if *interrupted { Some("interrupted") } else { is_error.then_some("failed") })} data-testid="result">
                    { meta }
                    <div class="summary">{ parts.join(" · ") }</div>
                    if *is_error && !text.is_empty() { <div class="text">{ text.clone() }</div> }
                </div>
            }
        }
    }
}
