//! [`IdSet`]: a set of instance indices as a two-level bitset, for the
//! event loop's free instances. Every lease and every completion adds or
//! takes one, and each dispatch step asks for the next one from a point:
//! in a `BTreeSet` those were a tree search each (5% of the event loop's
//! instructions). Here each is a word or two. Written here rather than
//! taken from a crate: `fixedbitset` and `bit-set` have no "next member
//! from" query, and `hibitset` brings a layered design for millions of
//! ids and atomics the loop does not need.

/// Indices start at 0 and grow as instances launch; the set's memory is
/// a bit per index ever inserted, and a bit per 64 of those.
#[derive(Debug, Default, Clone)]
pub(super) struct IdSet {
    /// Bit `i % 64` of word `i / 64`: `i` is in the set.
    words: Vec<u64>,
    /// Bit `w % 64` of word `w / 64`: word `w` of `words` is not zero.
    summary: Vec<u64>,
}

impl IdSet {
    /// Adds `i`; `false` if it was in already.
    pub fn insert(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, i % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
            self.summary.resize(w / 64 + 1, 0);
        }
        let had = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        self.summary[w / 64] |= 1 << (w % 64);
        !had
    }

    /// Takes `i` out; `false` if it was not in.
    pub fn remove(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, i % 64);
        let Some(word) = self.words.get_mut(w) else {
            return false;
        };
        let had = *word & (1 << b) != 0;
        *word &= !(1 << b);
        if *word == 0 {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
        had
    }

    /// The smallest member at or after `from`.
    pub fn next_from(&self, from: usize) -> Option<usize> {
        let (w, b) = (from / 64, from % 64);
        let here = *self.words.get(w)? & (!0u64 << b);
        if here != 0 {
            return Some(w * 64 + here.trailing_zeros() as usize);
        }
        // The next word that is not zero, by the summary.
        let next = w + 1;
        let (mut s, sb) = (next / 64, next % 64);
        let mut bits = self.summary.get(s).copied().unwrap_or(0) & (!0u64 << sb);
        loop {
            if bits != 0 {
                let w = s * 64 + bits.trailing_zeros() as usize;
                return Some(w * 64 + self.words[w].trailing_zeros() as usize);
            }
            s += 1;
            bits = *self.summary.get(s)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Rng;
    use std::collections::BTreeSet;

    #[test]
    fn answers_as_a_btreeset_does() {
        let mut rng = Rng::new(7);
        let (mut set, mut tree) = (IdSet::default(), BTreeSet::new());
        // Spread over more than one summary word (64 × 64 indices).
        let span = 9000.0;
        for step in 0..40_000 {
            let i = (rng.unit() * span) as usize;
            if rng.unit() < 0.55 {
                assert_eq!(set.insert(i), tree.insert(i), "insert {i} at {step}");
            } else {
                assert_eq!(set.remove(i), tree.remove(&i), "remove {i} at {step}");
            }
            let from = (rng.unit() * (span + 200.0)) as usize;
            assert_eq!(
                set.next_from(from),
                tree.range(from..).next().copied(),
                "next from {from} at {step}"
            );
        }
        // Every member in order, and none past the last.
        let mut from = 0;
        let mut seen = vec![];
        while let Some(i) = set.next_from(from) {
            seen.push(i);
            from = i + 1;
        }
        assert_eq!(seen, tree.iter().copied().collect::<Vec<_>>());
        assert!(!seen.is_empty(), "the walk saw members");
    }

    #[test]
    fn an_empty_set_and_one_emptied_have_no_next() {
        let mut set = IdSet::default();
        assert_eq!(set.next_from(0), None);
        assert!(!set.remove(5));
        assert!(set.insert(4100));
        assert_eq!(set.next_from(0), Some(4100));
        assert_eq!(set.next_from(4100), Some(4100));
        assert_eq!(set.next_from(4101), None);
        assert!(set.remove(4100));
        assert_eq!(set.next_from(0), None);
        assert_eq!(set.next_from(1 << 20), None);
    }
}
