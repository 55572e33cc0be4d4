//! [`ObjectColdStore`]: cold files in an object store (S3 through `object_store`, or its
//! in-process `InMemory` store for tests). Built by the `s3` workstream; see
//! `cold_storage/store/mod.rs` for the seam it implements.

/// Cold files in an object store.
#[derive(Debug)]
pub(crate) struct ObjectColdStore {}

pub(crate) mod cache;
