//! A read cache for data that changes only through this store (the project list, live
//! tokens). Every write bumps the generation after it commits; a reader fills the cache only
//! if no write happened while it queried, so a stale read is never kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

pub(crate) struct Cached<T> {
    generation: AtomicU64,
    slot: RwLock<Option<(u64, T)>>,
}

impl<T: Clone> Cached<T> {
    pub(crate) fn new() -> Self {
        Self {
            generation: AtomicU64::new(0),
            slot: RwLock::new(None),
        }
    }

    /// The cached value, if it is from the current generation.
    pub(crate) fn get(&self) -> Option<T> {
        let current = self.generation.load(Ordering::Acquire);
        match &*self.slot.read().expect("cache lock") {
            Some((generation, value)) if *generation == current => Some(value.clone()),
            _ => None,
        }
    }

    /// Call before querying; pass the result to [`Cached::fill`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `value`, read at `generation`, unless a write has happened since.
    pub(crate) fn fill(&self, generation: u64, value: T) {
        let mut slot = self.slot.write().expect("cache lock");
        if self.generation.load(Ordering::Acquire) == generation {
            *slot = Some((generation, value));
        }
    }

    /// Call after every committed write.
    pub(crate) fn invalidate(&self) {
        let mut slot = self.slot.write().expect("cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        *slot = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_a_write_is_not_kept() {
        let cache = Cached::<u32>::new();
        let before = cache.generation();
        cache.invalidate();
        cache.fill(before, 1);
        assert_eq!(cache.get(), None);
        let now = cache.generation();
        cache.fill(now, 2);
        assert_eq!(cache.get(), Some(2));
        cache.invalidate();
        assert_eq!(cache.get(), None);
    }
}
