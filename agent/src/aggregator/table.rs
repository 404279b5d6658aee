//! The context index: an open-addressing table (linear probing, backward-shift deletion) from a context key's
//! 64-bit hash to the context's slot.
//!
//! Hand-written rather than `hashbrown::HashTable` because the insert path looks up a group of lines at once
//! and prefetches each line's probe position before the first lookup (and each found context before the
//! first update): with 100k contexts the table and the contexts do not fit in the core's caches, and
//! overlapping those misses is most of the cost of a sample. hashbrown does not expose where a probe starts.
//!
//! An entry is one `u64`: the high 32 bits of the key hash (a fingerprint, so most mismatches are rejected
//! without touching the context) and the slot index + 1 (0 marks an empty entry). The probe starts at the
//! hash's low bits. At most `MAX_EIGHTHS`/8 full (7/8 by default); eight entries share a cache line, so the
//! short runs linear probing makes at that load stay within one or two lines. The line-text index, looked up
//! for every sample, is kept at most half full (`Table<4>`): a found entry is then ~1.3 probes away on
//! average instead of ~2.5, and a missing one ~2 instead of ~8, for 8 more bytes per context.

/// Open-addressing map from key hash to slot index (see the module documentation), at most `MAX_EIGHTHS`/8
/// full.
#[derive(Debug, Default)]
pub(super) struct Table<const MAX_EIGHTHS: usize = 7> {
    entries: Vec<u64>,
    len: usize,
}

const MIN_CAPACITY: usize = 64;

#[inline]
fn entry(hash: u64, idx: u32) -> u64 {
    (hash & 0xffff_ffff_0000_0000) | (idx as u64 + 1)
}

#[inline]
fn fingerprint_matches(e: u64, hash: u64) -> bool {
    (e ^ hash) >> 32 == 0
}

#[inline]
fn index_of(e: u64) -> u32 {
    (e as u32).wrapping_sub(1)
}

impl<const MAX_EIGHTHS: usize> Table<MAX_EIGHTHS> {
    #[inline]
    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    /// Brings the cache line where a probe for `hash` starts closer to the core.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        if self.entries.is_empty() {
            return;
        }
        let pos = hash as usize & self.mask();
        crate::prefetch::prefetch_read(&self.entries[pos]);
    }

    /// The slot whose entry matches `hash` and for which `eq` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        loop {
            let e = self.entries[pos];
            if e == 0 {
                return None;
            }
            if fingerprint_matches(e, hash) && eq(index_of(e)) {
                return Some(index_of(e));
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Adds `idx` under `hash` (not already present). `hash_of` gives the hash of any slot, for growing.
    pub(super) fn insert(&mut self, hash: u64, idx: u32, hash_of: impl Fn(u32) -> u64) {
        if (self.len + 1) * 8 > self.entries.len() * MAX_EIGHTHS {
            let cap = (self.entries.len() * 2).max(MIN_CAPACITY);
            self.rebuild(cap, &hash_of);
        }
        self.place(entry(hash, idx), hash);
        self.len += 1;
    }

    fn place(&mut self, e: u64, hash: u64) {
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        while self.entries[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        self.entries[pos] = e;
    }

    fn rebuild(&mut self, cap: usize, hash_of: &impl Fn(u32) -> u64) {
        let old = std::mem::replace(&mut self.entries, vec![0; cap]);
        for e in old.into_iter().filter(|&e| e != 0) {
            let h = hash_of(index_of(e));
            self.place(entry(h, index_of(e)), h);
        }
    }

    /// Removes the entry of slot `idx` stored under `hash`; true when it was there.
    pub(super) fn remove(&mut self, hash: u64, idx: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let mask = self.mask();
        let want = entry(hash, idx);
        let mut pos = hash as usize & mask;
        loop {
            let e = self.entries[pos];
            if e == 0 {
                return false;
            }
            if e == want {
                break;
            }
            pos = (pos + 1) & mask;
        }
        // Backward-shift deletion: move later entries of the run into the hole when their probe start allows.
        let mut hole = pos;
        let mut next = (hole + 1) & mask;
        loop {
            let e = self.entries[next];
            if e == 0 {
                break;
            }
            let home = hash_of(index_of(e)) as usize & mask;
            // The entry at `next` may move to `hole` when `hole` lies cyclically in [home, next).
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.entries[hole] = e;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.entries[hole] = 0;
        self.len -= 1;
        // Shrink when mostly empty (after a burst of contexts went away).
        if self.entries.len() > MIN_CAPACITY && self.len * 8 < self.entries.len() {
            let cap = (self.len * 4).next_power_of_two().max(MIN_CAPACITY);
            self.rebuild(cap, &hash_of);
        }
        true
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random inserts and removals with colliding hashes agree with a `HashMap` model, at both loads.
    #[test]
    fn matches_a_hashmap_model_under_churn() {
        churn::<7>();
        churn::<4>();
    }

    fn churn<const MAX_EIGHTHS: usize>() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Slot -> hash; few distinct low bits so runs are long and wrap around.
        let mut hashes: HashMap<u32, u64> = HashMap::new();
        let mut t = Table::<MAX_EIGHTHS>::default();
        for step in 0..20_000u32 {
            let r = next();
            if r % 3 != 0 || hashes.is_empty() {
                let h = (next() & 0xffff_ffff_0000_0000)
                    | (next() & 0x3f)
                    | if step % 7 == 0 { 0 } else { 0x40 };
                hashes.insert(step, h);
                t.insert(h, step, |i| hashes[&i]);
            } else {
                let k = *hashes.keys().nth((r as usize / 3) % hashes.len()).unwrap();
                let h = hashes[&k];
                assert!(t.remove(h, k, |i| hashes[&i]));
                assert!(!t.remove(h, k, |i| hashes[&i]));
                hashes.remove(&k);
            }
            assert_eq!(t.len(), hashes.len());
            assert!(t.len() * 8 <= t.entries.len() * MAX_EIGHTHS);
            if step % 500 == 0 {
                for (&k, &h) in &hashes {
                    assert_eq!(
                        t.find(h, |i| i == k),
                        Some(k),
                        "slot {k} lost at step {step}"
                    );
                }
            }
        }
        for (&k, &h) in &hashes {
            assert_eq!(t.find(h, |i| i == k), Some(k));
        }
        assert_eq!(t.find(0xdead_beef_0000_0001, |_| true), None);
    }
}
