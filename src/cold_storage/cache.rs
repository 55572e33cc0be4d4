//! The metadata cache: opened files (footer, page index, checksums), bounded by their size in
//! memory, least recently used evicted first.

use std::collections::HashMap;
use std::sync::Arc;

use super::file::ColdFile;
use crate::record::Record;

/// Opened files (footer and page index), bounded by their in-memory size, least recently used
/// evicted first.
pub(super) struct MetaCache<R: Record> {
    pub(super) files: HashMap<i64, (Arc<ColdFile<R>>, usize, u64)>,
    pub(super) bytes: usize,
    pub(super) limit: usize,
    pub(super) tick: u64,
}

impl<R: Record> MetaCache<R> {
    pub(super) fn get(&mut self, file_id: i64) -> Option<Arc<ColdFile<R>>> {
        self.tick += 1;
        let tick = self.tick;
        self.files.get_mut(&file_id).map(|e| {
            e.2 = tick;
            Arc::clone(&e.0)
        })
    }

    pub(super) fn insert(&mut self, file_id: i64, file: Arc<ColdFile<R>>) {
        let size = file.memory_size();
        self.tick += 1;
        if let Some(old) = self.files.insert(file_id, (file, size, self.tick)) {
            self.bytes -= old.1;
        }
        self.bytes += size;
        while self.bytes > self.limit && self.files.len() > 1 {
            let (&victim, _) = self
                .files
                .iter()
                .filter(|(&id, _)| id != file_id)
                .min_by_key(|(_, e)| e.2)
                .expect("more than one entry");
            self.remove(victim);
        }
    }

    pub(super) fn remove(&mut self, file_id: i64) {
        if let Some((_, size, _)) = self.files.remove(&file_id) {
            self.bytes -= size;
        }
    }
}
