//! Rows keyed by v2 id, sorted with a bucket index over the ids' leading bits; parents' keys
//! in blocks, or as bits.
//!
//! Preview and the final migration hold one entry per row of an account, so the
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

/// Entries per block of [`IntIds`]: 196,608 bytes.
const BLOCK: usize = 8192;

/// v2 ids by integer key, for keys that mostly arrive ascending (a run reads records in key
/// order): kept in fixed blocks in key order, 24 bytes an entry and nothing more (a hash map
/// took half as much again, and a grown vector briefly twice), with a cursor, since children
/// met in their parent's order look up the same key or the next one. A key that arrives out
/// of order goes to a hash map beside.
#[derive(Debug, Clone, Default)]
pub struct IntIds {
    /// Ascending keys over all blocks; a removed entry keeps its place with the nil id.
    blocks: Vec<Vec<(i64, Uuid)>>,
    firsts: Vec<i64>,
    extra: std::collections::HashMap<i64, Uuid, foldhash::fast::RandomState>,
    /// The block and position of the last entry found.
    cursor: std::cell::Cell<(usize, usize)>,
    len: usize,
}

impl IntIds {
    /// The highest key in the blocks (keys beside them are lower).
    pub fn last_key(&self) -> Option<i64> {
        self.blocks.last().and_then(|b| b.last()).map(|e| e.0)
    }

    /// Where `key` sits in the blocks.
    fn position(&self, key: i64) -> Option<(usize, usize)> {
        let (b, i) = self.cursor.get();
        // The entry found last, or the one after it (in this block or the next).
        for (b, i) in [(b, i), (b, i + 1), (b + 1, 0)] {
            if self.blocks.get(b).and_then(|x| x.get(i)).is_some_and(|e| e.0 == key) {
                self.cursor.set((b, i));
                return Some((b, i));
            }
        }
        let b = self.firsts.partition_point(|&f| f <= key).checked_sub(1)?;
        let block = &self.blocks[b];
        // Legacy keys are mostly dense (a sequence with few gaps): where the key would sit if
        // the block's keys were evenly spread is then where it is, one probe instead of a
        // binary search's thirteen cache misses (looked up at random: TPC-H's order lines
        // name their part and supplier).
        let i = match guess(block, key).filter(|&i| block[i].0 == key) {
            Some(i) => i,
            None => block.binary_search_by_key(&key, |e| e.0).ok()?,
        };
        self.cursor.set((b, i));
        Some((b, i))
    }

    /// Sets `key`'s id, replacing any it had.
    pub fn insert(&mut self, key: i64, id: Uuid) {
        if self.last_key().is_none_or(|last| key > last) {
            // Every key beside is below the last one: none is `key`.
            if self.blocks.last().is_none_or(|b| b.len() == BLOCK) {
                self.blocks.push(Vec::with_capacity(BLOCK));
                self.firsts.push(key);
            }
            if let Some(b) = self.blocks.last_mut() {
                b.push((key, id));
            }
            self.len += 1;
        } else if let Some((b, i)) = self.position(key) {
            let slot = &mut self.blocks[b][i].1;
            if slot.is_nil() {
                self.len += 1;
            }
            *slot = id;
        } else if self.extra.insert(key, id).is_none() {
            self.len += 1;
        }
    }

    /// Forgets `key`'s id.
    pub fn remove(&mut self, key: i64) {
        if let Some((b, i)) = self.position(key) {
            let slot = &mut self.blocks[b][i].1;
            if !slot.is_nil() {
                *slot = Uuid::nil();
                self.len -= 1;
            }
        } else if self.extra.remove(&key).is_some() {
            self.len -= 1;
        }
    }

    /// `key`'s id, if it has one.
    pub fn get(&self, key: i64) -> Option<Uuid> {
        match self.position(key) {
            Some((b, i)) => Some(self.blocks[b][i].1).filter(|id| !id.is_nil()),
            None => self.extra.get(&key).copied(),
        }
    }

    /// Keys with an id.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key has one.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A set of integer keys at a bit each over the span from the first key: a legacy sequence
/// takes a bit or a few a key (TPC-H's orders use one key in four) where [`IntIds`] takes 24
/// bytes. A key below the first, or one that would make the set take more than 64 bits a key,
/// is refused: the caller keeps it another way.
#[derive(Debug, Clone, Default)]
pub struct KeyBits {
    base: Option<i64>,
    words: Vec<u64>,
    len: usize,
}

/// Words a [`KeyBits`] may hold beyond one a key: room for a sparse start.
const BITS_SLACK: usize = 1024;

impl KeyBits {
    /// The word and bit of `key`, if it is not below the first key.
    fn place(&self, key: i64) -> Option<(usize, u32)> {
        let offset = u64::try_from(i128::from(key) - i128::from(self.base?)).ok()?;
        Some((usize::try_from(offset / 64).ok()?, (offset % 64) as u32))
    }

    /// Adds `key`; false when it is refused (see the type).
    pub fn insert(&mut self, key: i64) -> bool {
        self.base.get_or_insert(key);
        let Some((w, bit)) = self.place(key) else { return false };
        if w >= self.words.len() {
            if w >= self.len + 1 + BITS_SLACK {
                return false;
            }
            self.words.resize(w + 1, 0);
        }
        let word = &mut self.words[w];
        if *word & (1 << bit) == 0 {
            *word |= 1 << bit;
            self.len += 1;
        }
        true
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: i64) -> bool {
        self.place(key).and_then(|(w, bit)| self.words.get(w).map(|x| x & (1 << bit) != 0)).unwrap_or(false)
    }

    /// Takes `key` out; whether it was in.
    pub fn remove(&mut self, key: i64) -> bool {
        let Some((word, bit)) = self.place(key).and_then(|(w, bit)| self.words.get_mut(w).map(|x| (x, bit))) else {
            return false;
        };
        let was = *word & (1 << bit) != 0;
        *word &= !(1 << bit);
        if was {
            self.len -= 1;
        }
        was
    }

    /// Keys in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Where `key` would sit in `block` (ascending keys) if its keys were evenly spread.
fn guess(block: &[(i64, Uuid)], key: i64) -> Option<usize> {
    let (first, last) = (block.first()?.0, block.last()?.0);
    if key < first || key > last {
        return None;
    }
    let span = i128::from(last) - i128::from(first);
    if span == 0 {
        return Some(0);
    }
    let at = (i128::from(key) - i128::from(first)) * (block.len() as i128 - 1) / span;
    usize::try_from(at).ok()
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

    #[test]
    fn int_ids_answer_like_a_map_in_any_order() {
        use std::collections::HashMap;
        // Ascending with gaps, then out of order, replaced, removed and given again, across
        // several blocks; every answer as a plain map gives it.
        let mut ids = IntIds::default();
        let mut want: HashMap<i64, Uuid> = HashMap::new();
        let mut ops: Vec<(i64, Option<u128>)> = (0..3 * BLOCK as i64).map(|k| (k * 3, Some(k as u128 + 1))).collect();
        ops.extend([(7, Some(900)), (3, Some(901)), (-5, Some(902)), (6, None), (7, None), (7, Some(903))]);
        ops.extend([(-5, None), (9 * BLOCK as i64, Some(904)), (4, Some(905)), (3 * BLOCK as i64, None)]);
        // Then keys spread unevenly (squares), where a guess by even spread misses.
        let squares: Vec<i64> = (0..BLOCK as i64 + 100).map(|k| 100_000 + k * k).collect();
        ops.extend(squares.iter().map(|&k| (k, Some(k as u128))));
        for (k, v) in ops {
            match v {
                Some(v) => {
                    ids.insert(k, Uuid::from_u128(v));
                    want.insert(k, Uuid::from_u128(v));
                }
                None => {
                    ids.remove(k);
                    want.remove(&k);
                }
            }
        }
        assert_eq!(ids.len(), want.len());
        for k in -10..(9 * BLOCK as i64 + 10) {
            assert_eq!(ids.get(k), want.get(&k).copied(), "key {k}");
        }
        for &k in &squares {
            for k in [k - 1, k, k + 1] {
                assert_eq!(ids.get(k), want.get(&k).copied(), "key {k}");
            }
        }
        // Children in their parent's order: the same key again, then the next.
        for k in (0..300).map(|k| k * 3) {
            assert_eq!(ids.get(k), want.get(&k).copied());
            assert_eq!(ids.get(k), want.get(&k).copied());
        }
    }

    #[test]
    fn key_bits_hold_dense_keys_and_refuse_the_rest() {
        let mut b = KeyBits::default();
        assert!(!b.contains(5));
        // One key in four from 100, as TPC-H's orders.
        for k in (100..100_000).step_by(4) {
            assert!(b.insert(k));
        }
        assert_eq!(b.len(), 24_975);
        assert!(b.contains(100) && b.contains(99_996) && !b.contains(101) && !b.contains(99) && !b.contains(1 << 40));
        // Below the first key, or far past the last: refused, and nothing changed.
        assert!(!b.insert(99));
        assert!(!b.insert(100_000 + 64 * (24_975 + BITS_SLACK as i64 + 2)));
        assert!(!b.insert(i64::MAX) && !b.insert(i64::MIN));
        assert_eq!(b.len(), 24_975);
        // Again, removed, removed again.
        assert!(b.insert(100));
        assert_eq!(b.len(), 24_975);
        assert!(b.remove(104) && !b.remove(104) && !b.remove(-3));
        assert!(!b.contains(104));
        assert_eq!(b.len(), 24_974);
    }
}
