//! Writes the seed corpora under `fuzz/corpus/<target>/` from the sample day: real
//! deposits, coins, links, payments, swap and allowance requests, receipt groups, small
//! batch files, policies and request bodies. Run once (`cargo run --release --example
//! seed_corpora` in `fuzz/`); the fuzzers grow the corpora from there and `cargo fuzz cmin`
//! keeps them small.

use std::path::{Path, PathBuf};

use microcash::engine::batch_file::BatchWriter;
use microcash::protocol::allowance::AllowanceRequest;
use microcash::protocol::coin::Payment;
use microcash::protocol::deposit::{BlindedOutput, Deposit, SwapRequest};
use microcash::protocol::encoding::Encode;
use microcash::protocol::keys::OwnerSecret;
use microcash::protocol::stealth::Address;
use microcash::protocol::verify::Verifier;
use microcash::spentset::receipt::encode_group;
use microcash::spentset::ReceiptEntry;
use rand::SeedableRng;

fn corpus(target: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(name), bytes).expect("write seed");
}

fn hinted_payload(d: &Deposit, with_hints: bool) -> Vec<u8> {
    let (bytes, hints) = d.to_bytes_with_hints();
    let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&bytes);
    if with_hints {
        out.extend_from_slice(&hints);
    }
    out
}

fn outputs_of(deposits: &[&Deposit]) -> Vec<BlindedOutput> {
    deposits
        .iter()
        .map(|d| BlindedOutput {
            keyset_id: d.coin.keyset_id,
            blinded: d.coin.sigma,
        })
        .collect()
}

fn batch_file(path: &Path, deposits: &[&Deposit], v1: bool) {
    let mut w = if v1 {
        BatchWriter::create_v1(path, [7; 16], 1_900_000_000)
    } else {
        BatchWriter::create(path, [7; 16], 1_900_000_000)
    }
    .expect("create batch");
    for (i, d) in deposits.iter().enumerate() {
        if i % 2 == 0 || v1 {
            w.append(&d.to_bytes()).expect("append");
        } else {
            let (bytes, hints) = d.to_bytes_with_hints();
            w.append_hinted(&bytes, &hints).expect("append hinted");
        }
    }
    w.finish().expect("finish batch");
}

fn json_body(route: u8, body: serde_json::Value) -> Vec<u8> {
    let mut out = vec![route];
    out.extend_from_slice(body.to_string().as_bytes());
    out
}

fn main() {
    let day = microcash_fuzz::sample_day();
    let verifier = Verifier::new(&day.params.keysets, &day.params.policy);
    let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(1);
    let valid: Vec<&Deposit> = day.valid.iter().collect();

    for (i, d) in valid.iter().take(12).enumerate() {
        put("deposit", &format!("hinted-{i}"), &hinted_payload(d, true));
        put("deposit", &format!("plain-{i}"), &hinted_payload(d, false));
        put("differential", &format!("valid-{i}"), &d.to_bytes());
        put("coin", &format!("coin-{i}"), &d.coin.to_bytes());
        for (j, link) in d.coin.links.iter().enumerate() {
            put("link", &format!("link-{i}-{j}"), &link.to_bytes());
        }
    }
    for (i, pair) in valid.chunks(2).take(6).enumerate() {
        let payment = Payment {
            coins: pair.iter().map(|d| d.coin.clone()).collect(),
        };
        put("payment", &format!("payment-{i}"), &payment.to_bytes());
        let swap = SwapRequest {
            inputs: pair.iter().map(|d| (*d).clone()).collect(),
            outputs: outputs_of(pair),
        };
        put("swap", &format!("swap-{i}"), &swap.to_bytes());
        let wallet = OwnerSecret::generate(&mut rng);
        let request =
            AllowanceRequest::sign(&wallet, 22_000 + i as u64, outputs_of(pair), &mut rng);
        put(
            "allowance_request",
            &format!("request-{i}"),
            &request.to_bytes(),
        );

        put(
            "json_bodies",
            &format!("deposit-{i}"),
            &json_body(
                0,
                serde_json::json!({ "deposit": hex::encode(pair[0].to_bytes()) }),
            ),
        );
        put(
            "json_bodies",
            &format!("withdraw-{i}"),
            &json_body(
                1,
                serde_json::json!({
                    "account": "merchant-0000",
                    "outputs": outputs_of(pair).iter().map(|o| hex::encode(o.to_bytes())).collect::<Vec<_>>(),
                }),
            ),
        );
        put(
            "json_bodies",
            &format!("swap-{i}"),
            &json_body(
                2,
                serde_json::json!({ "request": hex::encode(swap.to_bytes()) }),
            ),
        );
        put(
            "json_bodies",
            &format!("allowance-{i}"),
            &json_body(
                3,
                serde_json::json!({ "request": hex::encode(request.to_bytes()) }),
            ),
        );
        put(
            "json_bodies",
            &format!("wallet-{i}"),
            &json_body(
                4,
                serde_json::json!({
                    "address": Address(wallet.public()).to_string(),
                    "identity": format!("person-{i}"),
                }),
            ),
        );
    }
    put(
        "json_bodies",
        "batch-id",
        b"\x050123456789abcdef0123456789abcdef",
    );
    put(
        "json_bodies",
        "verdicts-id",
        b"\x060123456789abcdef0123456789abcdef",
    );

    let entries: Vec<ReceiptEntry> = valid
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, d)| {
            let v = verifier.verify_deposit(d, day.now).expect("valid sample");
            ReceiptEntry {
                serial: v.serial().0,
                epoch: v.epoch(),
                deposit_digest: v.digest(),
                value: v.value(),
                time: day.now,
                batch: [i as u8; 16],
                record: i as u64,
                target: microcash::store::state::target_label(v.target()),
                owner_keys: v.owner_keys().iter().map(|k| k.to_bytes()).collect(),
                allowances: v
                    .allowance_serials()
                    .iter()
                    .map(|(s, e)| (s.0, *e))
                    .collect(),
                chain_digests: v.chain_digests().to_vec(),
            }
        })
        .collect();
    for n in [0, 1, 3, 6] {
        let (bytes, _) = encode_group(&entries[..n]).expect("in bounds");
        put("receipt_group", &format!("group-{n}"), &bytes);
    }

    let tmp = tempfile::tempdir().expect("temp dir");
    for (name, n, v1) in [("v2-3", 3, false), ("v2-1", 1, false), ("v1-2", 2, true)] {
        let path = tmp.path().join(name);
        batch_file(&path, &valid[..n], v1);
        put(
            "batch_file",
            name,
            &std::fs::read(&path).expect("read batch"),
        );
    }

    let policy = std::fs::read(microcash_fuzz::samples().join("mixed.params/policy.toml"))
        .expect("sample policy");
    put("policy_toml", "sample", &policy);
    put(
        "policy_toml",
        "written",
        toml::to_string(&day.params.policy)
            .expect("toml")
            .as_bytes(),
    );
    println!("seed corpora written under {}", corpus("").display());
}
