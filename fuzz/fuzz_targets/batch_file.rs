//! A batch file as uploaded by a clearing partner: the reader opens it or names why not,
//! then returns records (or their damage) in order and always reaches the end, whatever
//! the bytes; every payload it hands over decodes or is refused.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::engine::batch_file::BatchReader;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(data).expect("write");
    let Ok(mut reader) = BatchReader::open(file.path()) else {
        return;
    };
    let len = reader.file_len();
    // Every record costs at least a header byte or a lost sequence number bounded by the
    // bytes skipped: far fewer than this many.
    let bound = 2 * len + 16;
    let mut records = 0u64;
    let mut last_index = None;
    let mut small_chunks = true;
    loop {
        // Alternate chunk shapes: the byte budget must never stall or drop a record.
        let chunk = if small_chunks {
            reader.next_chunk(3, 64)
        } else {
            reader.next_chunk(1000, 1 << 20)
        };
        small_chunks = !small_chunks;
        if chunk.is_empty() {
            break;
        }
        for record in chunk {
            records += 1;
            assert!(records <= bound, "the reader does not reach the end");
            assert!(record.offset <= len, "a record beyond the end of the file");
            if let Some(prev) = last_index {
                assert!(record.index > prev, "record numbers go backwards");
            }
            last_index = Some(record.index);
            if let Ok(payload) = &record.payload {
                let _ = microcash_fuzz::deposit_of(record.kind, payload);
            }
        }
    }
    assert_eq!(reader.position(), len, "the reader stopped before the end");
});
