//! Work that two parties may each do: a worker that goes ahead (the incremental probe, a
//! unit's helper sessions) and the one that needs the result when it gets there (a unit). Each
//! piece of work is done once: the one that needs it takes it if the worker has not started on
//! it (and does it itself), else waits for the worker's answer.
//!
//! A piece is open, taken by the worker, answered, or left to the one that needs it. A worker
//! that stops without answering (a failure, a panic) leaves what it had taken, so that no one
//! waits for it forever.

use std::collections::BTreeMap;

use tokio::sync::watch;

/// Where a piece of work is.
#[derive(Debug, Clone)]
enum Claim<A> {
    /// No one has started on it.
    Open,
    /// The worker is on it.
    Taken,
    /// The worker's answer.
    Answered(A),
    /// Left to the one that needs it (it took it, or the worker stopped without an answer).
    Left,
}

/// The pieces of work `K` and their answers `A`.
pub struct Claims<K, A> {
    states: watch::Sender<BTreeMap<K, Claim<A>>>,
}

impl<K: Ord + Clone, A: Clone> Claims<K, A> {
    /// `keys`, all open.
    pub fn new(keys: impl IntoIterator<Item = K>) -> Claims<K, A> {
        let states = keys.into_iter().map(|k| (k, Claim::Open)).collect();
        Claims {
            states: watch::Sender::new(states),
        }
    }

    /// The one that needs `key` takes it if no one has: whether it is now its own to do
    /// (a key that was never here is too).
    pub fn claim(&self, key: &K) -> bool {
        let mut mine = true;
        self.states
            .send_if_modified(|states| match states.get_mut(key) {
                Some(state @ Claim::Open) => {
                    *state = Claim::Left;
                    true
                }
                Some(_) => {
                    mine = false;
                    false
                }
                None => false,
            });
        mine
    }

    /// The worker's answer for `key` it took: waits while the worker is on it; `None` if
    /// the worker stopped without one (or never took it).
    pub async fn answer(&self, key: &K) -> Option<A> {
        let mut states = self.states.subscribe();
        let states = states
            .wait_for(|s| !matches!(s.get(key), Some(Claim::Taken)))
            .await
            .ok()?;
        match states.get(key) {
            Some(Claim::Answered(a)) => Some(a.clone()),
            _ => None,
        }
    }

    /// The worker takes `key`, if it is still open.
    pub fn take(&self, key: &K) -> Option<Taking<'_, K, A>> {
        let taken = self
            .states
            .send_if_modified(|states| match states.get_mut(key) {
                Some(state @ Claim::Open) => {
                    *state = Claim::Taken;
                    true
                }
                _ => false,
            });
        taken.then(|| Taking {
            claims: self,
            key: key.clone(),
        })
    }

    /// The worker takes the last open key.
    pub fn take_last(&self) -> Option<Taking<'_, K, A>> {
        let mut key = None;
        self.states.send_if_modified(|states| {
            let last = states
                .iter_mut()
                .rev()
                .find(|(_, s)| matches!(**s, Claim::Open));
            match last {
                Some((k, state)) => {
                    *state = Claim::Taken;
                    key = Some(k.clone());
                    true
                }
                None => false,
            }
        });
        key.map(|key| Taking { claims: self, key })
    }

    /// Leaves the open keys that `which` picks to those that need them.
    pub fn leave(&self, which: impl Fn(&K) -> bool) {
        self.states.send_if_modified(|states| {
            let mut changed = false;
            for (key, state) in states.iter_mut() {
                if matches!(*state, Claim::Open) && which(key) {
                    *state = Claim::Left;
                    changed = true;
                }
            }
            changed
        });
    }

    /// Whether a key is open.
    pub fn any_open(&self) -> bool {
        self.states
            .borrow()
            .values()
            .any(|s| matches!(*s, Claim::Open))
    }

    /// Whether the worker is on a key.
    pub fn any_taken(&self) -> bool {
        self.states
            .borrow()
            .values()
            .any(|s| matches!(*s, Claim::Taken))
    }

    /// Leaves every open key, and waits until the worker is on none.
    pub async fn settle(&self) {
        self.leave(|_| true);
        let mut states = self.states.subscribe();
        let _ = states
            .wait_for(|s| !s.values().any(|s| matches!(*s, Claim::Taken)))
            .await;
    }
}

/// A key the worker has taken: it answers it, or leaves it when dropped unanswered.
pub struct Taking<'a, K: Ord + Clone, A: Clone> {
    claims: &'a Claims<K, A>,
    key: K,
}

impl<K: Ord + Clone, A: Clone> Taking<'_, K, A> {
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The answer, for whoever waits for it.
    pub fn answer(self, answer: A) {
        self.claims.states.send_modify(|states| {
            if let Some(state) = states.get_mut(&self.key) {
                *state = Claim::Answered(answer);
            }
        });
    }
}

impl<K: Ord + Clone, A: Clone> Drop for Taking<'_, K, A> {
    fn drop(&mut self) {
        self.claims
            .states
            .send_if_modified(|states| match states.get_mut(&self.key) {
                Some(state @ Claim::Taken) => {
                    *state = Claim::Left;
                    true
                }
                _ => false,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// A waiting party's answer, which must come.
    async fn awaited(waiting: tokio::task::JoinHandle<Option<bool>>) -> Option<bool> {
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("still waiting")
            .unwrap()
    }

    fn waiting_for(
        claims: &Arc<Claims<u8, bool>>,
        key: u8,
    ) -> tokio::task::JoinHandle<Option<bool>> {
        let claims = Arc::clone(claims);
        tokio::spawn(async move { claims.answer(&key).await })
    }

    #[tokio::test]
    async fn who_needs_a_key_waits_while_the_worker_is_on_it_and_takes_its_answer() {
        let claims = Arc::new(Claims::new([1u8, 2]));
        let taking = claims.take(&1).unwrap();
        assert!(!claims.claim(&1), "taken by the worker");
        let waiting = waiting_for(&claims, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "answered before the worker did");
        taking.answer(true);
        assert_eq!(awaited(waiting).await, Some(true));
        // The last open key, once.
        assert_eq!(claims.take_last().map(|t| *t.key()), Some(2));
        assert!(claims.take_last().is_none());
    }

    #[tokio::test]
    async fn a_key_claimed_first_is_never_the_workers() {
        let claims: Claims<u8, bool> = Claims::new([1, 2, 3]);
        assert!(claims.claim(&1));
        assert!(claims.take(&1).is_none());
        assert_eq!(claims.answer(&1).await, None);
        claims.leave(|k| *k == 2);
        assert!(claims.take(&2).is_none());
        assert_eq!(claims.take_last().map(|t| *t.key()), Some(3));
        assert!(!claims.any_open());
        // A key that was never here is the asker's own.
        assert!(claims.claim(&9));
    }

    #[tokio::test]
    async fn a_worker_that_stops_without_an_answer_leaves_its_key() {
        let claims = Arc::new(Claims::new([1u8, 2]));
        let taking = claims.take(&1).unwrap();
        let waiting = waiting_for(&claims, 1);
        let settled = {
            let claims = Arc::clone(&claims);
            tokio::spawn(async move { claims.settle().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(claims.any_taken());
        assert!(
            !settled.is_finished(),
            "settled while the worker was on a key"
        );
        drop(taking);
        assert_eq!(awaited(waiting).await, None);
        tokio::time::timeout(Duration::from_secs(5), settled)
            .await
            .expect("still settling")
            .unwrap();
        // Settling left the open key.
        assert!(claims.take(&2).is_none());
    }
}
