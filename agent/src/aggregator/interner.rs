//! The aggregator's string interner: one `Arc<str>` per distinct metric name (histogram outputs' included)
//! and host, shared by every context and flushed series that uses it, freed by [`Interner::gc`] once nothing
//! else holds it.

use crate::model::IStr;
use hashbrown::HashSet;
use std::sync::Arc;

/// One distinct string per entry; entries nobody else references are dropped by `gc`.
#[derive(Debug, Default)]
pub(super) struct Interner {
    pub(super) set: HashSet<IStr, foldhash::fast::FixedState>,
}

impl Interner {
    pub(super) fn intern(&mut self, s: &str) -> IStr {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: IStr = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    pub(super) fn gc(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
        if self.set.capacity() > 64 && self.set.len() < self.set.capacity() / 4 {
            self.set.shrink_to(self.set.len() * 2);
        }
    }
}
