//! Rows keyed by v2 id, sorted, with a bucket index over the ids' leading bits.
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
