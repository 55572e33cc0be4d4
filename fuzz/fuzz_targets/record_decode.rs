//! Record decoding on arbitrary bytes: `<TransactionRecord as Record>::decode` and the
//! decode-with-id helper. A record that decodes must re-encode, and the re-encoding must decode
//! to the same record (compared by encoding, so NaN fields compare equal to themselves).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiered_storage::fuzzing::{decode_record, decode_record_with_id, encode_record};

fuzz_target!(|data: &[u8]| {
    let id = data.len() as i64 - 7;
    let with_id = decode_record_with_id(id, data);
    let Ok(record) = decode_record(data) else {
        assert!(
            with_id.is_err(),
            "decode failed but decode_with_id succeeded"
        );
        return;
    };
    let with_id = with_id.expect("decode succeeded but decode_with_id failed");
    assert_eq!(with_id.id, Some(id));

    let bytes = encode_record(&record).expect("a decoded record encodes");
    let again = decode_record(&bytes).expect("a re-encoded record decodes");
    assert_eq!(
        encode_record(&again).expect("encodes"),
        bytes,
        "decode(encode(r)) differs from r"
    );
});
