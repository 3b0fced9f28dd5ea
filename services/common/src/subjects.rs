//! Whom per-caller limits belong to, and the per-subject cap on concurrent
//! streams: one reading for the gateway and the streaming service, so a
//! caller is counted the same wherever it is limited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::auth::{ANONYMOUS_SUBJECT, Caller};

/// The key a caller's limits are kept under: the verified subject, or for
/// anonymous callers their client's key ([`anonymous_subject`], which a
/// caller may have made once per connection), so strangers do not share one
/// allowance.
pub fn subject_key(caller: &Caller, anonymous_key: impl FnOnce() -> String) -> String {
    match caller.anonymous {
        true => anonymous_key(),
        false => caller.subject.clone(),
    }
}

/// The key of anonymous callers from `client`.
pub fn anonymous_subject(client: Option<IpAddr>) -> String {
    match client {
        Some(ip) => format!("{ANONYMOUS_SUBJECT}@{ip}"),
        None => format!("{ANONYMOUS_SUBJECT}@unknown"),
    }
}

/// Open streaming calls per subject, capped.
#[derive(Clone)]
pub struct StreamSlots {
    open: Arc<Mutex<HashMap<String, usize>>>,
    max: usize,
}

/// One open stream of a subject, counted until dropped.
pub struct StreamSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    subject: String,
}

impl StreamSlots {
    pub fn new(max: usize) -> Self {
        Self { open: Arc::default(), max }
    }

    /// The most streams one subject may hold open.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more stream of `subject`; `None` at the cap.
    pub fn acquire(&self, subject: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock().expect("stream slots lock is not poisoned");
        let count = open.entry(subject.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(StreamSlot { open: self.open.clone(), subject: subject.to_owned() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("stream slots lock is not poisoned");
        if let Some(count) = open.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_cap_each_subject_and_free_on_drop() {
        let slots = StreamSlots::new(2);
        let first = slots.acquire("alice").unwrap();
        let _second = slots.acquire("alice").unwrap();
        assert!(slots.acquire("alice").is_none());
        assert!(slots.acquire("bob").is_some(), "each subject has its own cap");
        drop(first);
        assert!(slots.acquire("alice").is_some());
    }

    #[test]
    fn anonymous_callers_are_keyed_by_address() {
        let anonymous = Caller::anonymous(&[]);
        assert_eq!(
            subject_key(&anonymous, || anonymous_subject(Some("10.0.0.7".parse().unwrap()))),
            "anonymous@10.0.0.7"
        );
        assert_eq!(subject_key(&anonymous, || anonymous_subject(None)), "anonymous@unknown");
        let mut known = Caller::anonymous(&[]);
        (known.anonymous, known.subject) = (false, "user:ada".into());
        assert_eq!(subject_key(&known, || anonymous_subject(Some("10.0.0.7".parse().unwrap()))), "user:ada");
    }
}
