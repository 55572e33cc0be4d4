//! One weigher for both of the hot tier's bounds: a record count and a byte size.

/// Enforces a record bound and a byte bound with one moka weigher: an entry weighs
/// `ceil(max(bytes * capacity, max_bytes) / divisor)` and the cache holds
/// `floor(capacity * max_bytes / divisor)` units. A full cache then has at most `capacity`
/// entries (each weighs at least `max_bytes / divisor`) and at most `max_bytes` bytes (each weighs
/// at least `bytes * capacity / divisor`). `divisor` keeps one weight within `u32`.
pub(super) struct WeightScale {
    pub(super) capacity: u64,
    pub(super) max_bytes: u64,
    divisor: u64,
}

impl WeightScale {
    pub(super) fn new(capacity: u64, max_bytes: u64, max_record_bytes: usize) -> Self {
        let heaviest = (max_record_bytes as u64)
            .saturating_mul(capacity)
            .max(max_bytes);
        Self {
            capacity,
            max_bytes,
            divisor: heaviest / u64::from(u32::MAX) + 1,
        }
    }

    pub(super) fn units(&self) -> u64 {
        let units =
            u128::from(self.capacity) * u128::from(self.max_bytes) / u128::from(self.divisor);
        units.min(u128::from(u64::MAX)) as u64
    }

    pub(super) fn weight(&self, bytes: u32) -> u32 {
        let raw = u64::from(bytes)
            .saturating_mul(self.capacity)
            .max(self.max_bytes);
        raw.div_ceil(self.divisor).clamp(1, u64::from(u32::MAX)) as u32
    }
}
