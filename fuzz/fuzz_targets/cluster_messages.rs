//! Cluster messages as they come off the streams (`src/cluster/messages.rs`): work chunks,
//! verified chunks, votes and announces. Decoding is total; a verified chunk that decodes
//! is typed or refused by name; a decoded vote set is decided or refused — never a panic,
//! whatever a damaged stream or a hostile publisher hands an owner.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::cluster::messages::{self, Announce, TypedChunk, VerifiedChunk, Vote, WorkChunk};
use microcash::cluster::partition;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let _ = messages::decode::<WorkChunk>("f", rest);
        }
        1 => {
            let _ = messages::decode::<Announce>("f", rest);
        }
        2 => {
            let _ = messages::decode::<Vote>("f", rest);
        }
        _ => {
            // A verified chunk, then votes decoded from what follows it.
            let Ok((chunk, mut tail)) = postcard::take_from_bytes::<VerifiedChunk>(rest) else {
                return;
            };
            let Ok(typed) = TypedChunk::from_wire("f", chunk) else {
                return;
            };
            let mut votes = Vec::new();
            while let Ok((v, t)) = postcard::take_from_bytes::<Vote>(tail) {
                votes.push(v);
                tail = t;
                if votes.len() > 8 {
                    break;
                }
            }
            let partitions = (votes.len() as u32).max(1);
            let _ = partition::decide(typed, &votes, [7u8; 16], partitions);
        }
    }
});
