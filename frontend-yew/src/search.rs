//! The agent list's search: what a query is worth sending, and the results as the list shows them.
//! A result is the server's answer to one query, a snapshot; the list keeps changing (statuses move,
//! agents are purged), so each result shows the live agent, and a purged one leaves the results at once.

use std::rc::Rc;

use agentstream_wire::{Agent, AgentMatch};
use uuid::Uuid;

/// How long typing must pause before the query is sent, in milliseconds.
pub const DEBOUNCE_MS: u32 = 250;

/// The results one page holds: the list is a column beside the agent, and "More matches" fetches the
/// next page.
pub const LIMIT: usize = 20;

/// The query to send for what is in the box; `None`: the box is blank, the whole list shows.
pub fn query_of(input: &str) -> Option<&str> {
    (!input.trim().is_empty()).then_some(input)
}

/// The results of one query so far, page after page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    pub found: Vec<AgentMatch>,
    /// The last page was full: there may be more, after the last result.
    pub more: bool,
}

impl Results {
    /// Adds the next page (asked for with [`Results::next_page`]).
    pub fn add_page(&mut self, page: Vec<AgentMatch>) {
        self.more = page.len() >= LIMIT;
        // An agent purged and one created between two pages shift nothing (pages follow `before`),
        // but a result already shown is never shown twice.
        for m in page {
            if !self.found.iter().any(|f| f.agent.id == m.agent.id) {
                self.found.push(m);
            }
        }
    }

    /// Where the next page starts (`before`), when there may be one.
    pub fn next_page(&self) -> Option<Uuid> {
        self.more
            .then(|| self.found.last().map(|m| m.agent.id))
            .flatten()
    }
}

/// An agent the list shows, with the passage a search found in it.
pub type Shown = (Agent, Option<Rc<str>>);

/// The results in the server's order, each as the live list has it now (with its `match`); results
/// that left the list (purged) are dropped.
pub fn shown(live: &[Agent], results: &[AgentMatch]) -> Vec<Shown> {
    results
        .iter()
        .filter_map(|r| {
            let agent = live.iter().find(|a| a.id == r.agent.id)?;
            Some((agent.clone(), r.matched.as_deref().map(Rc::from)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::AgentStatus;
    use serde_json::json;

    fn agent(n: u8, status: &str) -> Agent {
        serde_json::from_value(json!({
            "id": format!("01a234a9-8ddf-7095-a4f1-6a70010de1{n:02}"), "type": "synthetic",
            "status": status, "prompt": "p", "createdAt": "2026-12-02T10:00:00.000Z",
            "startedAt": null, "completedAt": null
        }))
        .expect("agent")
    }

    fn result(agent: Agent, matched: &str) -> AgentMatch {
        AgentMatch {
            agent,
            matched: Some(matched.to_owned()),
        }
    }

    fn page(from: u8, count: u8) -> Vec<AgentMatch> {
        (from..from + count)
            .map(|n| result(agent(n, "completed"), "gnu"))
            .collect()
    }

    #[test]
    fn a_full_page_offers_the_next_after_its_last_result_and_a_short_one_ends_the_results() {
        let mut results = Results::default();
        assert_eq!(results.next_page(), None);
        results.add_page(page(0, LIMIT as u8));
        assert_eq!(results.next_page(), Some(results.found[LIMIT - 1].agent.id));
        // The next page, overlapping by one (an agent shown already is not shown again).
        results.add_page(page(LIMIT as u8 - 1, 3));
        assert_eq!(results.found.len(), LIMIT + 2);
        assert_eq!(results.next_page(), None);
        let mut none = Results::default();
        none.add_page(Vec::new());
        assert_eq!((none.found.len(), none.next_page()), (0, None));
    }

    #[test]
    fn a_blank_box_is_no_search() {
        assert_eq!(query_of(""), None);
        assert_eq!(query_of("  \t"), None);
        assert_eq!(query_of(" crab "), Some(" crab "));
    }

    #[test]
    fn results_keep_their_order_show_the_live_agent_and_drop_purged_ones() {
        let live = vec![agent(3, "running"), agent(2, "completed")];
        let results = vec![
            result(agent(3, "initializing"), "…the crab…"),
            result(agent(1, "completed"), "purged since"),
            result(agent(2, "completed"), "crab"),
        ];
        let got = shown(&live, &results);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.status, AgentStatus::Running);
        assert_eq!(got[0].1.as_deref(), Some("…the crab…"));
        assert_eq!(got[1].0.id, live[1].id);
    }
}
