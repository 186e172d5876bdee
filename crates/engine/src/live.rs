//! The live row state of a table, read a part at a time as a final migration meets the table's
//! records (or the overwrite preview its v2 rows), so that its memory does not grow with the
//! table.
//!
//! The state comes back in the order the last run met its records, which is the order this run
//! meets them in again unless v1 changed: a record found near the front of what is not met yet
//! is the common case and costs nothing to keep. What v1 no longer gives, or gives in another
//! order, is set aside as it is passed over; an id the state cannot hold (a new v1 record) is
//! told apart by the sorted leading bits of every live id, read only once such an id is met.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

use crate::connect::ConnectorError;

/// A live entry: the row's id and what a reader keeps of it (by default its v1 and v2
/// fingerprints).
pub type Entry<P = (i64, i64)> = (Uuid, P);

/// The entries of one part of the state, in order, and the part's last chunk.
pub type EntriesPart<P = (i64, i64)> = (Vec<Entry<P>>, i32);

/// A part read: `None` once every part was read.
pub type NextPart<P = (i64, i64)> = Result<Option<EntriesPart<P>>, ConnectorError>;

/// How far past the front an id is looked for before the entries passed over are asked.
const NEAR: usize = 8;

/// Where the entries come from.
pub trait Parts<P = (i64, i64)> {
    /// The entries of the next part after the chunk `after`, in order, and the part's last
    /// chunk; `None` once every part was read.
    fn next_part(&mut self, after: i32) -> NextPart<P>;
    /// Every live id, in any order.
    fn all_ids(&mut self) -> Result<Vec<Uuid>, ConnectorError>;
}

/// The entry looked up last: a run may look the same id up twice (to keep it unchanged, then
/// to write it), and only the second may give it again.
#[derive(Debug, Clone, Copy)]
struct Last<P> {
    id: Uuid,
    fps: P,
    given: bool,
}

/// The live state of one table, read a part at a time.
#[derive(Debug)]
pub struct LiveState<P = (i64, i64)> {
    /// Entries read and not reached yet, in order.
    ahead: VecDeque<Entry<P>>,
    /// Whether parts remain unread, and the last chunk read.
    more: bool,
    after: i32,
    last: Option<Last<P>>,
    /// Entries passed over and not given again yet: out of order, or no longer in v1.
    passed: HashMap<Uuid, P>,
    /// The sorted leading 64 bits of every live id: an id whose bits are not among them is not
    /// in the state. Read at the first id found neither near the front nor passed over.
    prefixes: Option<Vec<u64>>,
    /// Live entries that were not given again, known so far.
    gone: Vec<Entry<P>>,
}

fn prefix(id: &Uuid) -> u64 {
    (id.as_u128() >> 64) as u64
}

impl<P: Copy> LiveState<P> {
    /// The state read a part at a time from [`Parts`].
    pub fn in_parts() -> Self {
        Self {
            ahead: VecDeque::new(),
            more: true,
            after: -1,
            last: None,
            passed: HashMap::new(),
            prefixes: None,
            gone: Vec::new(),
        }
    }

    /// Reads parts until `n` entries are ahead or none remain.
    fn fill(&mut self, n: usize, parts: &mut dyn Parts<P>) -> Result<(), ConnectorError> {
        while self.more && self.ahead.len() < n {
            match parts.next_part(self.after)? {
                Some((entries, last_chunk)) => {
                    self.ahead.extend(entries);
                    self.after = last_chunk;
                }
                None => self.more = false,
            }
        }
        Ok(())
    }

    /// Whether the state may hold `id`: no when its leading bits are not any live id's.
    fn may_hold(&mut self, id: &Uuid, parts: &mut dyn Parts<P>) -> Result<bool, ConnectorError> {
        if self.prefixes.is_none() {
            // Every id not reached yet is ahead or passed over once all parts are read.
            let mut all: Vec<u64> = if self.more {
                parts.all_ids()?.iter().map(prefix).collect()
            } else {
                self.ahead.iter().map(|e| prefix(&e.0)).collect()
            };
            all.sort_unstable();
            all.dedup();
            self.prefixes = Some(all);
        }
        Ok(self.prefixes.as_ref().is_some_and(|p| p.binary_search(&prefix(id)).is_ok()))
    }

    /// Ends the last lookup: an entry looked up and not given again is gone.
    fn settle_last(&mut self) {
        if let Some(l) = self.last.take()
            && !l.given
        {
            self.gone.push((l.id, l.fps));
        }
    }

    fn found(&mut self, id: Uuid, fps: P) -> Option<P> {
        self.last = Some(Last { id, fps, given: false });
        Some(fps)
    }

    /// What the state holds of `id`'s entry, if it holds it.
    pub fn find(&mut self, id: &Uuid, parts: &mut dyn Parts<P>) -> Result<Option<P>, ConnectorError> {
        if let Some(l) = self.last
            && l.id == *id
        {
            return Ok(Some(l.fps));
        }
        self.settle_last();
        self.fill(NEAR, parts)?;
        if let Some(k) = self.ahead.iter().take(NEAR).position(|e| e.0 == *id) {
            // Almost always the front: an empty extend still costs a hash map's reserve.
            if k > 0 {
                self.passed.extend(self.ahead.drain(..k));
            }
            let Some((id, fps)) = self.ahead.pop_front() else { return Ok(None) };
            return Ok(self.found(id, fps));
        }
        if let Some(fps) = self.passed.remove(id) {
            return Ok(self.found(*id, fps));
        }
        if !self.may_hold(id, parts)? {
            return Ok(None);
        }
        // Further ahead: what lies before it is set aside.
        loop {
            self.fill(1, parts)?;
            let Some(e) = self.ahead.pop_front() else { return Ok(None) };
            if e.0 == *id {
                return Ok(self.found(e.0, e.1));
            }
            self.passed.insert(e.0, e.1);
        }
    }

    /// The entry the run meets next when v1 gives its records in the order the last run met
    /// them: the first not met yet.
    pub fn next(&mut self, parts: &mut dyn Parts<P>) -> Result<Option<Entry<P>>, ConnectorError> {
        self.fill(1, parts)?;
        Ok(self.ahead.front().copied())
    }

    /// The entry [`find`](Self::find) gave last is given again: it stays.
    pub fn give(&mut self) {
        if let Some(l) = self.last.as_mut() {
            l.given = true;
        }
    }

    /// The live entries that were not given again, once the run met every record: what is left
    /// ahead, unread and passed over.
    pub fn finish(mut self, parts: &mut dyn Parts<P>) -> Result<Vec<Entry<P>>, ConnectorError> {
        self.settle_last();
        loop {
            self.gone.extend(self.ahead.drain(..));
            if !self.more {
                break;
            }
            self.fill(1, parts)?;
        }
        self.gone.extend(self.passed);
        Ok(self.gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts of `size` entries from a list, counting what was asked.
    struct List {
        entries: Vec<Entry>,
        size: usize,
        parts_read: usize,
        ids_read: usize,
    }

    impl Parts for List {
        fn next_part(&mut self, after: i32) -> NextPart {
            let start = usize::try_from(after + 1).unwrap_or(0) * self.size;
            if start >= self.entries.len() {
                return Ok(None);
            }
            self.parts_read += 1;
            let end = (start + self.size).min(self.entries.len());
            Ok(Some((self.entries[start..end].to_vec(), after + 1)))
        }
        fn all_ids(&mut self) -> Result<Vec<Uuid>, ConnectorError> {
            self.ids_read += 1;
            Ok(self.entries.iter().map(|e| e.0).collect())
        }
    }

    fn id(n: u64) -> Uuid {
        // Distinct leading bits, as UUIDv5 ids have.
        Uuid::from_u128((u128::from(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(n))
    }

    fn list(n: u64, size: usize) -> List {
        List { entries: (0..n).map(|i| (id(i), (i as i64, -(i as i64)))).collect(), size, parts_read: 0, ids_read: 0 }
    }

    /// Looks each id up and gives it again when the state holds it: what was found, in order.
    fn meet(state: &mut LiveState, parts: &mut List, ids: &[u64]) -> Vec<Option<(i64, i64)>> {
        ids.iter()
            .map(|&i| {
                let f = state.find(&id(i), parts).unwrap();
                if f.is_some() {
                    state.give();
                }
                f
            })
            .collect()
    }

    fn sorted(gone: Vec<Entry>) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = gone.into_iter().map(|e| e.0).collect();
        v.sort();
        v
    }

    fn ids(v: impl IntoIterator<Item = u64>) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = v.into_iter().map(id).collect();
        v.sort();
        v
    }

    #[test]
    fn records_met_in_order_are_found_without_reading_every_id() {
        let mut parts = list(100, 16);
        let mut s = LiveState::in_parts();
        let found = meet(&mut s, &mut parts, &(0..100).collect::<Vec<_>>());
        assert!(found.iter().enumerate().all(|(i, f)| *f == Some((i as i64, -(i as i64)))));
        assert!(s.finish(&mut parts).unwrap().is_empty());
        assert_eq!(parts.ids_read, 0);
        assert_eq!(parts.parts_read, 7);
    }

    /// The next entry is the first not met yet, across parts and past records met out of
    /// order; none once every entry was met or passed over.
    #[test]
    fn the_next_entry_is_the_first_not_met_yet() {
        let mut parts = list(6, 2);
        let mut s = LiveState::in_parts();
        let next = |s: &mut LiveState, parts: &mut List| s.next(parts).unwrap().map(|e| e.1.0);
        assert_eq!(next(&mut s, &mut parts), Some(0));
        assert_eq!(meet(&mut s, &mut parts, &[0, 1]), [Some((0, 0)), Some((1, -1))]);
        assert_eq!(next(&mut s, &mut parts), Some(2));
        // 3 met before 2: 2 is passed over, and 4 comes next.
        assert_eq!(meet(&mut s, &mut parts, &[3]), [Some((3, -3))]);
        assert_eq!(next(&mut s, &mut parts), Some(4));
        assert_eq!(meet(&mut s, &mut parts, &[4, 5, 2]), [Some((4, -4)), Some((5, -5)), Some((2, -2))]);
        assert_eq!(next(&mut s, &mut parts), None);
        assert!(s.finish(&mut parts).unwrap().is_empty());
    }

    #[test]
    fn new_deleted_and_moved_records_are_told_apart() {
        for size in [1, 3, 16, 1000] {
            let mut parts = list(50, size);
            let mut s = LiveState::in_parts();
            // 10-29 are gone from v1; 40 comes first; 1000 and 1001 are new.
            let mut met: Vec<u64> = vec![40];
            met.extend(0..10);
            met.push(1000);
            met.extend(30..40);
            met.extend(41..50);
            met.push(1001);
            let found = meet(&mut s, &mut parts, &met);
            for (i, f) in met.iter().zip(&found) {
                let want = (*i < 50).then(|| (*i as i64, -(*i as i64)));
                assert_eq!(*f, want, "id {i}, parts of {size}");
            }
            assert_eq!(sorted(s.finish(&mut parts).unwrap()), ids(10..30), "parts of {size}");
        }
    }

    #[test]
    fn an_entry_looked_up_and_not_given_again_is_gone() {
        let mut parts = list(5, 2);
        let mut s = LiveState::in_parts();
        assert_eq!(s.find(&id(0), &mut parts).unwrap(), Some((0, 0)));
        // Looked up again, as a run does to write what it did not keep, then given.
        assert_eq!(s.find(&id(0), &mut parts).unwrap(), Some((0, 0)));
        s.give();
        // Looked up (its record now rejected, say) and not given.
        assert_eq!(s.find(&id(1), &mut parts).unwrap(), Some((1, -1)));
        meet(&mut s, &mut parts, &[2, 3]);
        assert_eq!(sorted(s.finish(&mut parts).unwrap()), ids([1, 4]));
    }
}
