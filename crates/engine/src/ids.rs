//! Rows keyed by v2 id: sorted with a bucket index over the ids' leading bits, or kept in the
//! order they come with a cursor that expects the next lookup to be for the next entry.
//!
//! Preview, verification and the final migration hold one entry per row of an account, so the
//! entries must be small (a hash map took three times the memory). A plain binary search over
//! millions of them misses the cache on nearly every step; cutover's ids are UUIDv5, i.e. SHA-1
//! output, so their leading bits are uniform and a table of bucket starts (a byte or so per row)
//! narrows every search to a handful of neighbours. Any ids work; uniform ones work fast.

use uuid::Uuid;

/// Entries sorted by id, found in a few steps.
#[derive(Debug, Clone)]
pub struct SortedIds<T> {
    rows: Vec<(Uuid, T)>,
    /// Index of the first entry of each bucket of `shift`-bit prefixes, plus `rows.len()`.
    starts: Vec<u32>,
    shift: u32,
}

/// About this many entries per bucket.
const PER_BUCKET: usize = 4;

impl<T> Default for SortedIds<T> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl<T> SortedIds<T> {
    /// Sorts `rows` by id and indexes them. Duplicate ids keep one of their entries findable.
    pub fn new(mut rows: Vec<(Uuid, T)>) -> Self {
        rows.sort_unstable_by_key(|r| r.0);
        let bits = (rows.len() / PER_BUCKET).max(1).next_power_of_two().trailing_zeros().min(28);
        let shift = 128 - bits;
        let mut starts = Vec::with_capacity((1usize << bits) + 1);
        let mut at = 0usize;
        for b in 0..(1u128 << bits) {
            while at < rows.len() && prefix(&rows[at].0, shift) < b {
                at += 1;
            }
            starts.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
        starts.push(u32::try_from(rows.len()).unwrap_or(u32::MAX));
        Self { rows, starts, shift }
    }

    /// The position of `id`, if present.
    pub fn find(&self, id: &Uuid) -> Option<usize> {
        if self.rows.len() > u32::MAX as usize {
            return self.rows.binary_search_by_key(id, |r| r.0).ok();
        }
        let b = usize::try_from(prefix(id, self.shift)).unwrap_or(0);
        let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        self.rows[lo..hi].binary_search_by_key(id, |r| r.0).ok().map(|i| lo + i)
    }

    /// The entry of `id`, if present.
    pub fn get(&self, id: &Uuid) -> Option<&T> {
        self.find(id).map(|i| &self.rows[i].1)
    }

    /// Entry `i` (a position [`find`](Self::find) gave).
    pub fn at(&self, i: usize) -> &(Uuid, T) {
        &self.rows[i]
    }

    /// Every entry, in id order.
    pub fn iter(&self) -> std::slice::Iter<'_, (Uuid, T)> {
        self.rows.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Entries in the order they came, found by id with a cursor: a run meets records in the same
/// order as the run before it wrote them (v1's key order), so nearly every lookup is for the
/// entry at the cursor or just past it (records deleted since leave a small gap). A lookup
/// that is not is answered by an index of positions by id, built the first time one is needed.
#[derive(Debug, Clone)]
pub struct OrderedIds<T> {
    entries: Vec<(Uuid, T)>,
    cursor: usize,
    index: Option<SortedIds<u32>>,
}

/// How far past the cursor an id is looked for before the index is asked.
const NEAR: usize = 8;

impl<T> OrderedIds<T> {
    /// Keeps `entries` in their order.
    pub fn new(entries: Vec<(Uuid, T)>) -> Self {
        Self { entries, cursor: 0, index: None }
    }

    /// The position of `id`, if present; the cursor moves past it.
    pub fn find(&mut self, id: &Uuid) -> Option<usize> {
        // From the entry found last: a caller may look the same id up twice in a row.
        let start = self.cursor.saturating_sub(1);
        let end = (self.cursor + NEAR).min(self.entries.len());
        if let Some(k) = self.entries[start.min(end)..end].iter().position(|e| e.0 == *id) {
            self.cursor = start + k + 1;
            return Some(start + k);
        }
        let entries = &self.entries;
        let index = self.index.get_or_insert_with(|| {
            SortedIds::new(
                entries.iter().enumerate().map(|(i, e)| (e.0, u32::try_from(i).unwrap_or(u32::MAX))).collect(),
            )
        });
        let at = *index.get(id)? as usize;
        self.cursor = at + 1;
        Some(at)
    }

    /// Entry `i` (a position [`find`](Self::find) gave).
    pub fn at(&self, i: usize) -> &(Uuid, T) {
        &self.entries[i]
    }

    /// Every entry, in their order.
    pub fn iter(&self) -> std::slice::Iter<'_, (Uuid, T)> {
        self.entries.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The id's leading `128 - shift` bits (none when `shift` is 128).
fn prefix(id: &Uuid, shift: u32) -> u128 {
    id.as_u128().checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_id_and_nothing_else() {
        for n in [0usize, 1, 2, 3, 7, 100, 5000] {
            let ids: Vec<Uuid> = (0..n).map(|i| Uuid::new_v5(&Uuid::NAMESPACE_OID, &i.to_le_bytes())).collect();
            let s = SortedIds::new(ids.iter().enumerate().map(|(i, u)| (*u, i)).collect());
            assert_eq!(s.len(), n);
            for (i, u) in ids.iter().enumerate() {
                assert_eq!(s.get(u), Some(&i), "n={n} i={i}");
            }
            for i in n..n + 50 {
                assert_eq!(s.find(&Uuid::new_v5(&Uuid::NAMESPACE_OID, &i.to_le_bytes())), None);
            }
        }
    }

    #[test]
    fn ordered_ids_are_found_in_order_out_of_order_and_not_at_all() {
        let ids: Vec<Uuid> = (0..1000u32).map(|i| Uuid::new_v5(&Uuid::NAMESPACE_OID, &i.to_le_bytes())).collect();
        let mut o = OrderedIds::new(ids.iter().enumerate().map(|(i, u)| (*u, i)).collect());
        // In order, with gaps (records gone since), each id twice in a row.
        for i in (0..1000).filter(|i| i % 7 != 3) {
            assert_eq!(o.find(&ids[i]), Some(i));
            assert_eq!(o.find(&ids[i]), Some(i));
        }
        assert!(o.index.is_none(), "in order, no index is needed");
        // Out of order and unknown ids.
        assert_eq!(o.find(&ids[5]), Some(5));
        assert_eq!(o.find(&ids[999]), Some(999));
        assert_eq!(o.find(&Uuid::nil()), None);
        assert_eq!(o.at(42).1, 42);
        assert_eq!(o.len(), 1000);
    }

    #[test]
    fn skewed_ids_are_found_too() {
        // Sequential ids all fall into the first bucket: slower, still right.
        let s = SortedIds::new((0u128..3000).rev().map(|i| (Uuid::from_u128(i), i)).collect());
        assert!(s.iter().zip(s.iter().skip(1)).all(|(a, b)| a.0 < b.0));
        for i in 0..3000 {
            assert_eq!(s.get(&Uuid::from_u128(i)), Some(&i));
        }
        assert_eq!(s.find(&Uuid::max()), None);
        assert_eq!(s.find(&Uuid::from_u128(3000)), None);
    }
}
