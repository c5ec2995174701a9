//! [`IdFilter`]: the in-memory filter in front of the event-id index, so
//! that the idempotency check of a new event id does not touch sled.

use fastbloom::BloomFilter;

/// Items the first layer is sized for (2.4 MB of bits).
const FIRST: usize = 1 << 20;
/// How much larger each next layer is: a lookup of a new id probes every
/// layer (a cache miss or two each), so few large layers beat many small
/// ones.
const GROWTH: usize = 4;
/// The hasher's seed, the same for every layer: an id is hashed once per
/// lookup, not once per layer.
const SEED: u128 = 0x6d65_7461_6368_6174_2d69_6473_2d76_3031;
/// False-positive rate of each layer (19 bits, 2.4 bytes, per id). A
/// false positive costs a read of one block in every sealed segment's id
/// table, so the rate is kept low: at 0.001 a large batch of new ids paid
/// more for those reads than for the filter.
const FALSE_POSITIVES: f64 = 0.0001;

/// A scalable Bloom filter of event ids: layers of growing size, a new one
/// when the last is full, so it never needs rebuilding; all of them hash
/// alike, so an id is hashed once. No false negatives:
/// an id it says is absent was never inserted.
pub(crate) struct IdFilter {
    layers: Vec<Layer>,
}

struct Layer {
    filter: BloomFilter,
    capacity: usize,
    len: usize,
}

impl Layer {
    fn new(capacity: usize) -> Self {
        Layer {
            filter: BloomFilter::with_false_pos(FALSE_POSITIVES)
                .seed(&SEED)
                .expected_items(capacity),
            capacity,
            len: 0,
        }
    }
}

impl IdFilter {
    pub(crate) fn new() -> Self {
        IdFilter {
            layers: vec![Layer::new(FIRST)],
        }
    }

    pub(crate) fn insert(&mut self, id: &[u8; 16]) {
        let full = self.layers.last().is_none_or(|l| l.len >= l.capacity);
        if full {
            let capacity = self
                .layers
                .last()
                .map_or(FIRST, |l| l.capacity.saturating_mul(GROWTH));
            self.layers.push(Layer::new(capacity));
        }
        if let Some(layer) = self.layers.last_mut() {
            let hash = layer.filter.source_hash(id);
            layer.filter.insert_hash(hash);
            layer.len += 1;
        }
    }

    /// `false` only if `id` was never inserted.
    pub(crate) fn may_contain(&self, id: &[u8; 16]) -> bool {
        let Some(first) = self.layers.first() else {
            return false;
        };
        let hash = first.filter.source_hash(id);
        self.layers.iter().any(|l| l.filter.contains_hash(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_across_layers_and_few_false_positives() {
        let mut f = IdFilter::new();
        let id = |i: u64| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&i.to_le_bytes());
            b[8..].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            b
        };
        let n = 1_500_000u64;
        for i in 0..n {
            f.insert(&id(i));
        }
        assert!(f.layers.len() > 1, "grew past its first layer");
        assert!((0..n).all(|i| f.may_contain(&id(i))));
        let false_positives = (n..2 * n).filter(|&i| f.may_contain(&id(i))).count();
        assert!(
            false_positives < 15_000,
            "{false_positives} false positives"
        );
    }
}
