//! The frequency sketch that decides promotion: fixed memory however many ids are read.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// A count-min sketch of 4 rows of saturating 8-bit counters with conservative increments and
/// periodic halving (TinyLFU ageing), so memory stays fixed however many ids are read.
pub(super) struct FrequencySketch {
    rows: [Box<[AtomicU8]>; 4],
    mask: usize,
    additions: AtomicUsize,
    reset_at: usize,
}

impl FrequencySketch {
    pub(super) fn new(counters: usize) -> Self {
        let width = counters.next_power_of_two();
        let row = || (0..width).map(|_| AtomicU8::new(0)).collect::<Box<[_]>>();
        Self {
            rows: [row(), row(), row(), row()],
            mask: width - 1,
            additions: AtomicUsize::new(0),
            reset_at: width * 10,
        }
    }

    pub(super) fn slots(&self, id: i64) -> [usize; 4] {
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(&id.to_le_bytes(), 0x9e37_79b9);
        let (a, b) = (h as usize, (h >> 32) as usize | 1);
        std::array::from_fn(|i| a.wrapping_add(i.wrapping_mul(b)) & self.mask)
    }

    pub(super) fn increment(&self, id: i64) -> u8 {
        let slots = self.slots(id);
        let min = (0..4)
            .map(|i| self.rows[i][slots[i]].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if min < u8::MAX {
            for (i, &s) in slots.iter().enumerate() {
                let _ = self.rows[i][s].compare_exchange(
                    min,
                    min + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        if self.additions.fetch_add(1, Ordering::Relaxed) + 1 >= self.reset_at {
            self.additions.store(0, Ordering::Relaxed);
            for row in &self.rows {
                for c in row.iter() {
                    let v = c.load(Ordering::Relaxed);
                    c.store(v / 2, Ordering::Relaxed);
                }
            }
        }
        min.saturating_add(1)
    }
}
