//! The hash-chained audit log: every state change, each entry holding the hash of the one before.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checklist::hex;

/// The hash the first entry of a chain links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit entry. `at` and `details` are kept as the exact text that was hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Chain: a project key, or empty for the system chain (users).
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339 time.
    pub at: String,
    /// Acting user's e-mail (or `system`).
    pub actor: String,
    /// Acting party (`vendor`, `customer (Org)`, `system`).
    pub party: String,
    /// What happened (`signed`, `scope_changed`, …).
    pub action: String,
    /// JSON with the details, including before/after where something changed.
    pub details: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

impl AuditEntry {
    /// Builds the entry that follows `prev` (or starts the chain), computing its hash.
    pub fn next(
        prev: Option<&AuditEntry>,
        chain: &str,
        at: String,
        actor: String,
        party: String,
        action: String,
        details: String,
    ) -> Self {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS.to_owned()),
        };
        let mut e = AuditEntry {
            chain: chain.to_owned(),
            seq,
            at,
            actor,
            party,
            action,
            details,
            prev_hash,
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    /// The hash this entry's content should have.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let seq = self.seq.to_string();
        for part in [
            self.prev_hash.as_str(),
            self.chain.as_str(),
            seq.as_str(),
            self.at.as_str(),
            self.actor.as_str(),
            self.party.as_str(),
            self.action.as_str(),
            self.details.as_str(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex(&h.finalize())
    }
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The first entry that does not verify.
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks a whole chain, in order: sequence without gaps, links and hashes.
pub fn verify(entries: &[AuditEntry]) -> Result<(), ChainBreak> {
    let mut prev_hash = GENESIS.to_owned();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if e.seq != expected_seq {
            return Err(ChainBreak {
                seq: e.seq,
                reason: format!("expected entry {expected_seq} here: an entry was removed or inserted"),
            });
        }
        if e.prev_hash != prev_hash {
            return Err(ChainBreak { seq: e.seq, reason: "does not link to the entry before it".into() });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "content does not match its hash: the entry was altered".into(),
            });
        }
        prev_hash = e.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut v: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let e = AuditEntry::next(
                v.last(),
                "p",
                format!("2026-11-24T10:00:0{i}Z"),
                "a@b.no".into(),
                "vendor".into(),
                "x".into(),
                "{}".into(),
            );
            v.push(e);
        }
        v
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
        assert_eq!(verify(&[]), Ok(()));
    }

    #[test]
    fn altered_entry_is_found() {
        let mut c = chain(5);
        c[2].details = r#"{"hours":1}"#.into();
        assert_eq!(verify(&c).unwrap_err().seq, 3);
    }

    #[test]
    fn rehashed_entry_breaks_the_next_link() {
        let mut c = chain(5);
        c[1].actor = "mallory@x.no".into();
        c[1].hash = c[1].compute_hash();
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("link"));
    }

    #[test]
    fn removed_entry_is_found() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).unwrap_err().seq, 3);
    }
}
