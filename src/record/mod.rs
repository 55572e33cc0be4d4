//! The `Record` trait the store is generic over, and the encoded form a record takes on its way
//! into the warm tier.
//!
//! - `transaction`: the bot's [`TransactionRecord`], the default record type;
//! - `arrow`: the Arrow (Parquet) column layouts of cold files.

pub(crate) mod arrow;
mod transaction;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

pub use transaction::{Outcome, OutcomeKind, PremintCandidate, ScoredCandidate, TransactionRecord};

/// What the store needs from a stored type.
///
/// Only the key accessors are required; `encode`/`decode` default to a compact binary serde
/// encoding ([postcard]). That encoding is not self-describing: serde attributes that need it
/// (`skip_serializing_if`, `untagged`, `flatten`) do not round-trip. Override both methods to use
/// another codec.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use tiered_storage::Record;
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Fill { id: Option<i64>, sig: Option<String>, at_ms: i64, qty: f64 }
///
/// impl Record for Fill {
///     fn id(&self) -> Option<i64> { self.id }
///     fn set_id(&mut self, id: i64) { self.id = Some(id) }
///     fn signature(&self) -> Option<&str> { self.sig.as_deref() }
///     fn timestamp_ms(&self) -> i64 { self.at_ms }
/// }
/// ```
///
/// [postcard]: https://docs.rs/postcard
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The store-assigned id; `None` until `put` returns.
    fn id(&self) -> Option<i64>;
    /// Called by the store with the id it assigned. Afterwards `id()` must return `Some(id)`:
    /// the store relies on it to route, cache and page records.
    fn set_id(&mut self, id: i64);
    /// The unique transaction signature, if the record has one yet.
    fn signature(&self) -> Option<&str>;
    /// The record's time, Unix milliseconds. Ageing (hot → warm → cold) is measured from it.
    fn timestamp_ms(&self) -> i64;

    /// Append the record's encoding to `buf`.
    fn encode(&self, buf: &mut Vec<u8>) -> Result<()> {
        let out = postcard::to_extend(self, std::mem::take(buf)).map_err(|e| Error::Codec {
            op: "encode",
            id: self.id(),
            message: e.to_string(),
        })?;
        *buf = out;
        Ok(())
    }

    /// Decode a record written by [`Record::encode`].
    fn decode(bytes: &[u8]) -> Result<Self> {
        postcard::from_bytes(bytes).map_err(|e| Error::Codec {
            op: "decode",
            id: None,
            message: e.to_string(),
        })
    }

    /// The Arrow schema of this type's cold (Parquet) files. Column 0 must be `id` (Int64, not
    /// null) and column 1 the record's timestamp (`Timestamp(ms)` or Int64, not null).
    ///
    /// The default stores `id`, `ts`, `signature` and the [`encode`](Record::encode)d record as
    /// a `payload` binary column: real Parquet that any reader can filter by id, time and
    /// signature. [`TransactionRecord`] overrides it with one column per field.
    fn cold_schema() -> arrow_schema::SchemaRef {
        arrow::generic_schema()
    }

    /// Convert records (ids set) to one batch of [`cold_schema`](Record::cold_schema).
    fn to_cold_batch(records: &[Self]) -> Result<arrow_array::RecordBatch> {
        arrow::generic_to_batch(records)
    }

    /// The value of a named field as text, for scan filters (`ScanRange::with_field`). The
    /// default has no fields. [`TransactionRecord`] answers `mint`, `creator`, `program`,
    /// `outcome_kind` and `transaction_signature`, which are also its cold column names.
    fn field(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let _ = name;
        None
    }

    /// Convert a batch of [`cold_schema`](Record::cold_schema) back to records (ids set).
    fn from_cold_batch(batch: &arrow_array::RecordBatch) -> Result<Vec<Self>> {
        arrow::generic_from_batch(batch)
    }
}

/// Decode a stored record and give it its id; a codec error names the id.
pub(crate) fn decode_with_id<R: Record>(id: i64, payload: &[u8]) -> Result<R> {
    let mut record = R::decode(payload).map_err(|e| match e {
        Error::Codec { op, message, .. } => Error::Codec {
            op,
            id: Some(id),
            message,
        },
        other => other,
    })?;
    record.set_id(id);
    Ok(record)
}

/// Stable 64-bit hash of a signature, stored in SQLite as the signature index key.
/// xxh3 is fixed by its spec, so stored hashes stay valid across builds.
pub(crate) fn signature_hash(sig: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(sig.as_bytes()) as i64
}

/// A record ready for the warm tier: validated, hashed and encoded on the caller's thread.
#[derive(Debug, Clone)]
pub(crate) struct EncodedRecord {
    pub id: Option<i64>,
    pub signature: Option<String>,
    pub sig_hash: Option<i64>,
    pub timestamp_ms: i64,
    pub payload: Vec<u8>,
}

impl EncodedRecord {
    /// Validate and encode. Rejects an empty signature and records over `max_bytes`.
    pub(crate) fn new<R: Record>(record: &R, max_bytes: usize) -> Result<Self> {
        let signature = match record.signature() {
            Some("") => return Err(Error::EmptySignature),
            Some(s) => Some(s.to_owned()),
            None => None,
        };
        let mut payload = Vec::with_capacity(512);
        record.encode(&mut payload)?;
        if payload.len() > max_bytes {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                max: max_bytes,
            });
        }
        Ok(Self {
            id: record.id(),
            sig_hash: signature.as_deref().map(signature_hash),
            signature,
            timestamp_ms: record.timestamp_ms(),
            payload,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use super::transaction::tests::sample;

    #[test]
    fn encode_decode_round_trip() {
        let mut r = sample(42);
        r.id = Some(7);
        r.actual_outcome = Outcome::VerificationFailed("slippage".into());
        let mut buf = Vec::new();
        r.encode(&mut buf).unwrap();
        assert_eq!(TransactionRecord::decode(&buf).unwrap(), r);
    }

    #[test]
    fn garbage_fails_to_decode_with_a_typed_error() {
        let err = TransactionRecord::decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, Error::Codec { op: "decode", .. }));
    }

    #[test]
    fn encoded_record_validates() {
        let mut r = sample(1);
        r.transaction_signature = Some(String::new());
        assert!(matches!(
            EncodedRecord::new(&r, 1 << 16),
            Err(Error::EmptySignature)
        ));
        let r = sample(1);
        assert!(matches!(
            EncodedRecord::new(&r, 64),
            Err(Error::RecordTooLarge { max: 64, .. })
        ));
        let e = EncodedRecord::new(&r, 1 << 16).unwrap();
        assert_eq!(e.sig_hash, Some(signature_hash(r.signature().unwrap())));
        assert_eq!(e.timestamp_ms, r.timestamp_decision_made);
    }
}
