//! The flow control between an agent's reader and the database, in one place.
//!
//! The reader feeds the agent's actor what the runner has ready; the actor hands each message to the
//! persistence actor at once and counts it here until it is stored. While the window is full (too many
//! messages, or too many bytes, not yet stored) the reader's feed is not accepted: it waits for a
//! credit, granted as soon as stored messages open the window again. So a runner can never run far
//! ahead of the database: memory stays bounded however fast it prints, and the persistence actor's
//! batches fill up.

use std::collections::VecDeque;

use tokio::sync::oneshot;

/// Messages of one agent that may be on their way to the database at once: enough for the persistence
/// actor's batches to fill up while the previous one is written, few enough to bound memory (the reader
/// waits beyond it; one feed may pass it by up to `reader::MAX_FEED_EVENTS`).
pub const IN_FLIGHT_WINDOW: usize = 256;

/// The bytes of text (raw line + content) of one agent that may be on their way to the database at
/// once: bounds the window's memory when lines are long (a longer line still goes, alone).
pub const IN_FLIGHT_BYTES: usize = 2 * 1024 * 1024;

/// An agent's messages handed to the persistence actor and not yet answered, and the reader's credit.
#[derive(Default)]
pub struct Window {
    /// The size of each message in flight, oldest first (answers come in the order sent).
    sizes: VecDeque<usize>,
    /// Their sum.
    bytes: usize,
    /// Wakes the reader when the window had been full.
    credit: Option<oneshot::Sender<()>>,
}

impl Window {
    /// A message of `size` bytes was handed to the persistence actor.
    pub fn sent(&mut self, size: usize) {
        self.sizes.push_back(size);
        self.bytes += size;
    }

    /// The oldest message in flight was answered (stored or not).
    pub fn answered(&mut self) {
        if let Some(size) = self.sizes.pop_front() {
            self.bytes = self.bytes.saturating_sub(size);
        }
    }

    /// Whether the reader may feed more.
    pub fn is_open(&self) -> bool {
        self.sizes.len() < IN_FLIGHT_WINDOW && self.bytes < IN_FLIGHT_BYTES
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// The window is full: resolves once it opens again (an error if the credit is dropped, as when the
    /// run ends).
    pub fn wait_for_credit(&mut self) -> oneshot::Receiver<()> {
        let (credit, granted) = oneshot::channel();
        self.credit = Some(credit);
        granted
    }

    /// Wakes a waiting reader if the window is open.
    pub fn grant_if_open(&mut self) {
        if self.is_open() {
            if let Some(credit) = self.credit.take() {
                let _ = credit.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_closes_on_count_or_bytes_and_a_credit_comes_when_it_reopens() {
        let mut w = Window::default();
        for _ in 0..IN_FLIGHT_WINDOW {
            assert!(w.is_open());
            w.sent(1);
        }
        assert!(!w.is_open());
        let mut granted = w.wait_for_credit();
        w.grant_if_open();
        assert!(granted.try_recv().is_err(), "granted while still full");
        w.answered();
        w.grant_if_open();
        assert!(granted.try_recv().is_ok());
        let mut w = Window::default();
        w.sent(IN_FLIGHT_BYTES);
        assert!(!w.is_open());
        w.answered();
        assert!(w.is_open() && w.is_empty());
    }
}
