//! A journal commit group's payload (v1 or v2). Frames are CRC-checked before this decoder
//! sees them, so this guards against our own bugs and a CRC collision: any bytes decode or
//! are refused, and a v2 group that decodes re-encodes to exactly its bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::spentset::receipt::{decode_group, encode_group, group_version, GroupVersion};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = decode_group(data) else {
        return;
    };
    if group_version(data) == GroupVersion::V2 {
        let entries: Vec<_> = entries.into_iter().map(|(_, e)| e).collect();
        let (bytes, _) = encode_group(&entries).expect("a decoded group is within bounds");
        assert_eq!(bytes, data, "a v2 group re-encodes differently");
    }
});
