//! The README walkthrough, run through the real `microcash` binary on local files:
//! issuer init → fund account → wallet A withdraws 1000 → pays 300 to B's address → B
//! re-spends 100 to C → C and B deposit → balances are right; depositing a coin again (to
//! another account, or after re-spending it elsewhere) is refused as a double spend.

use std::path::Path;
use std::process::{Command, Output};

struct Cli<'a> {
    dir: &'a Path,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_microcash"))
            .args(args)
            .current_dir(self.dir)
            .env("MICROCASH_ISSUER", self.dir.join("issuer"))
            .output()
            .expect("microcash runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should have failed");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn account(&self, name: &str) -> u64 {
        let line = self.ok(&["account", "show", name]);
        line.trim().rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn wallet_balance(&self, wallet: &str) -> u64 {
        let json: serde_json::Value =
            serde_json::from_str(&self.ok(&["wallet", "balance", "--wallet", wallet])).unwrap();
        json["balance"].as_u64().unwrap()
    }
}

#[test]
fn readme_walkthrough() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli { dir: tmp.path() };

    cli.ok(&["issuer", "init"]);
    cli.ok(&["account", "create", "alice"]);
    cli.ok(&["account", "fund", "alice", "5000"]);
    cli.ok(&["account", "create", "shop", "--merchant"]);
    cli.ok(&["account", "create", "bob-bank"]);
    cli.ok(&["account", "create", "other"]);

    cli.ok(&["wallet", "create", "--wallet", "a.json"]);
    let b = cli
        .ok(&["wallet", "create", "--wallet", "b.json"])
        .trim()
        .to_owned();
    let c = cli
        .ok(&["wallet", "create", "--wallet", "c.json"])
        .trim()
        .to_owned();
    let d = cli
        .ok(&["wallet", "create", "--wallet", "d.json"])
        .trim()
        .to_owned();

    cli.ok(&[
        "wallet",
        "withdraw",
        "--wallet",
        "a.json",
        "--account",
        "alice",
        "--amount",
        "1000",
    ]);
    assert_eq!(cli.account("alice"), 4000);
    assert_eq!(cli.wallet_balance("a.json"), 1000);

    cli.ok(&[
        "wallet", "pay", "--wallet", "a.json", "--to", &b, "--amount", "300", "--out", "p1.bin",
    ]);
    assert_eq!(cli.wallet_balance("a.json"), 700);
    // C cannot use a payment meant for B.
    let report: serde_json::Value =
        serde_json::from_str(&cli.ok(&["wallet", "receive", "--wallet", "c.json", "p1.bin"]))
            .unwrap();
    assert_eq!(report["accepted"], 0);
    assert_eq!(report["not_ours"], 4);
    let report: serde_json::Value =
        serde_json::from_str(&cli.ok(&["wallet", "receive", "--wallet", "b.json", "p1.bin"]))
            .unwrap();
    assert_eq!(report["value"], 300);
    assert_eq!(cli.wallet_balance("b.json"), 300);

    // Re-spending received coins needs allowance: refused until B gets some.
    let msg = cli.fails(&[
        "wallet", "pay", "--wallet", "b.json", "--to", &c, "--amount", "100", "--out", "p2.bin",
    ]);
    assert!(msg.contains("allowance"), "{msg}");
    cli.ok(&[
        "wallet",
        "register",
        "--wallet",
        "b.json",
        "--identity",
        "Bob",
    ]);
    cli.ok(&[
        "wallet",
        "allowance",
        "--wallet",
        "b.json",
        "--amount",
        "300",
    ]);
    cli.ok(&[
        "wallet", "pay", "--wallet", "b.json", "--to", &c, "--amount", "100", "--out", "p2.bin",
    ]);
    cli.ok(&["wallet", "receive", "--wallet", "c.json", "p2.bin"]);
    assert_eq!(cli.wallet_balance("c.json"), 100);
    assert_eq!(cli.wallet_balance("b.json"), 200);

    // B keeps a copy of its wallet before depositing: the cheater's tool.
    std::fs::copy(tmp.path().join("b.json"), tmp.path().join("b-copy.json")).unwrap();
    std::fs::copy(tmp.path().join("b.json"), tmp.path().join("b-copy2.json")).unwrap();

    cli.ok(&[
        "wallet",
        "register",
        "--wallet",
        "c.json",
        "--identity",
        "Carol",
    ]);
    cli.ok(&[
        "wallet",
        "allowance",
        "--wallet",
        "c.json",
        "--amount",
        "100",
    ]);
    cli.ok(&[
        "wallet",
        "deposit",
        "--wallet",
        "c.json",
        "--account",
        "shop",
    ]);
    cli.ok(&[
        "wallet",
        "deposit",
        "--wallet",
        "b.json",
        "--account",
        "bob-bank",
    ]);
    assert_eq!(cli.account("shop"), 100);
    assert_eq!(cli.account("bob-bank"), 200);
    assert_eq!(cli.wallet_balance("b.json"), 0);
    assert_eq!(cli.wallet_balance("c.json"), 0);

    // Depositing the same coins again, to another account: refused as double spends.
    let msg = cli.fails(&[
        "wallet",
        "deposit",
        "--wallet",
        "b-copy.json",
        "--account",
        "other",
    ]);
    assert!(msg.contains("double_spent"), "{msg}");
    assert_eq!(cli.account("other"), 0);

    // Re-spending an already-deposited coin elsewhere: the payee's deposit is refused.
    cli.ok(&[
        "wallet",
        "allowance",
        "--wallet",
        "b-copy2.json",
        "--amount",
        "200",
    ]);
    cli.ok(&[
        "wallet",
        "pay",
        "--wallet",
        "b-copy2.json",
        "--to",
        &d,
        "--amount",
        "8",
        "--out",
        "p3.bin",
    ]);
    cli.ok(&["wallet", "receive", "--wallet", "d.json", "p3.bin"]);
    cli.ok(&[
        "wallet",
        "register",
        "--wallet",
        "d.json",
        "--identity",
        "Dave",
    ]);
    cli.ok(&["wallet", "allowance", "--wallet", "d.json", "--amount", "8"]);
    let msg = cli.fails(&[
        "wallet",
        "deposit",
        "--wallet",
        "d.json",
        "--account",
        "other",
    ]);
    assert!(msg.contains("double_spent"), "{msg}");
    assert!(msg.contains("signed twice"), "{msg}");

    // Totals: nothing created, nothing lost.
    assert_eq!(cli.account("alice"), 4000);
    assert_eq!(
        cli.account("shop") + cli.account("bob-bank") + cli.account("other"),
        300
    );
    assert_eq!(cli.wallet_balance("a.json"), 700);

    // The auditor's view: A's 700 are the only coins in circulation; money funded equals
    // balances + outstanding coins + swap fees; the store checks sound.
    let issuer = tmp.path().join("issuer");
    let audit: serde_json::Value = serde_json::from_str(
        cli.ok(&["audit", "--store", issuer.to_str().unwrap(), "--json"])
            .trim(),
    )
    .unwrap();
    assert_eq!(audit["outstanding_value"], 700, "{audit}");
    assert_eq!(audit["swap_fees"], 0, "{audit}");
    assert!(audit["problems"].as_array().unwrap().is_empty(), "{audit}");
    assert!(audit["issued_value"].as_u64().unwrap() >= 1000);
    cli.ok(&["store", "check", "--store", issuer.to_str().unwrap()]);
    // A clearing partner's upload token: printed once, different every time.
    let first = cli.ok(&["partner", "create", "bank-a"]);
    assert!(first.contains("upload token"), "{first}");
    assert_ne!(first, cli.ok(&["partner", "create", "bank-a"]));
}

#[test]
fn audit_names_redemptions_without_recorded_issuance() {
    // A clearing store made from published parameters has redemptions but no issuance
    // records: the audit must say so instead of reporting a liability.
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli { dir: tmp.path() };
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples");
    let store = tmp.path().join("store");
    cli.ok(&[
        "clear",
        samples.join("mixed-day1.mcb").to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    let msg = cli.fails(&["audit", "--store", store.to_str().unwrap()]);
    assert!(msg.contains("MISMATCH"), "{msg}");
    assert!(msg.contains("redeemed but only 0 signed"), "{msg}");
}

#[test]
fn issuer_secret_key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli { dir: tmp.path() };
    cli.ok(&["issuer", "init"]);
    cli.ok(&["issuer", "rotate"]);
    let secrets = tmp.path().join("issuer/secrets");
    assert_eq!(
        std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut files = 0;
    for entry in std::fs::read_dir(&secrets).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        files += 1;
    }
    assert_eq!(files, 2, "one secret file per epoch");
    // Wallet files hold coin secrets too.
    cli.ok(&["wallet", "create", "--wallet", "w.json"]);
    let mode = std::fs::metadata(tmp.path().join("w.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The published list holds no secret: its keys match, and no secret hex appears in it.
    let public = std::fs::read_to_string(tmp.path().join("issuer/keysets.json")).unwrap();
    for entry in std::fs::read_dir(&secrets).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let map: std::collections::BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        for sk in map.values() {
            assert!(!public.contains(sk.as_str()));
        }
    }
}

/// An issuer whose class `standard` is on v2 with a day of two slots worth 100 each, an
/// account `alice` with 5000 and a merchant `shop`.
fn v2_issuer(cli: &Cli<'_>) {
    let mut policy = microcash::protocol::policy::Policy::default();
    policy.class.get_mut("standard").unwrap().allowance_scheme =
        microcash::protocol::policy::AllowanceScheme::V2;
    policy.allowance.daily_limit = 200;
    policy.allowance.slots = vec![(100, 2)];
    std::fs::write(cli.dir.join("policy.toml"), policy.to_toml()).unwrap();
    cli.ok(&["issuer", "init", "--policy", "policy.toml"]);
    cli.ok(&["account", "create", "alice"]);
    cli.ok(&["account", "fund", "alice", "5000"]);
    cli.ok(&["account", "create", "shop", "--merchant"]);
}

/// A v2 wallet killed right after journalling a payment that presents for its receipt:
/// the slot it took is recorded with the journal entry (never presented twice), and
/// `wallet recover` writes the same payment, which the payee receives and deposits.
#[test]
fn a_v2_payment_killed_after_its_journal_entry_recovers_with_its_slot_used() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli { dir: tmp.path() };
    v2_issuer(&cli);
    let b = cli
        .ok(&["wallet", "create", "--wallet", "b.json"])
        .trim()
        .to_owned();
    let c = cli
        .ok(&["wallet", "create", "--wallet", "c.json"])
        .trim()
        .to_owned();
    cli.ok(&["wallet", "create", "--wallet", "a.json"]);
    for (w, who) in [("b.json", "Bob"), ("c.json", "Carol")] {
        cli.ok(&[
            "wallet",
            "register",
            "--wallet",
            w,
            "--identity",
            who,
            "--class",
            "standard",
        ]);
    }
    cli.ok(&[
        "wallet",
        "withdraw",
        "--wallet",
        "a.json",
        "--account",
        "alice",
        "--amount",
        "64",
    ]);
    cli.ok(&[
        "wallet", "pay", "--wallet", "a.json", "--to", &b, "--amount", "64", "--out", "p1.bin",
    ]);
    cli.ok(&["wallet", "receive", "--wallet", "b.json", "p1.bin"]);
    let out = Command::new(env!("CARGO_BIN_EXE_microcash"))
        .args([
            "wallet", "pay", "--wallet", "b.json", "--to", &c, "--amount", "64", "--out", "p2.bin",
        ])
        .current_dir(tmp.path())
        .env("MICROCASH_ISSUER", tmp.path().join("issuer"))
        .env("MICROCASH_CRASH_AT", "pay:journalled")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the wallet was killed");
    assert!(!tmp.path().join("p2.bin").exists());
    let bal: serde_json::Value =
        serde_json::from_str(&cli.ok(&["wallet", "balance", "--wallet", "b.json"])).unwrap();
    assert_eq!(bal["pending_operations"], 1, "{bal}");
    assert_eq!(
        bal["receive_limit_left"]["standard"], 100,
        "the slot is taken: {bal}"
    );
    cli.ok(&["wallet", "recover", "--wallet", "b.json"]);
    let r: serde_json::Value =
        serde_json::from_str(&cli.ok(&["wallet", "receive", "--wallet", "c.json", "p2.bin"]))
            .unwrap();
    assert_eq!(r["accepted"], 1, "{r}");
    cli.ok(&[
        "wallet",
        "deposit",
        "--wallet",
        "c.json",
        "--account",
        "shop",
    ]);
    assert_eq!(cli.account("shop"), 64);
    let bal: serde_json::Value =
        serde_json::from_str(&cli.ok(&["wallet", "balance", "--wallet", "b.json"])).unwrap();
    assert_eq!(bal["receive_limit_left"]["standard"], 100, "{bal}");
}

/// `wallet deposit`'s per-coin outcomes and whether the command succeeded.
fn deposit_outcomes(cli: &Cli<'_>, wallet: &str) -> (Vec<serde_json::Value>, bool) {
    let out = cli.run(&["wallet", "deposit", "--wallet", wallet, "--account", "shop"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });
    (
        v["coins"].as_array().cloned().unwrap_or_default(),
        out.status.success(),
    )
}

/// An allowance v2 day through the binary (README "Receive limits v2"): register with a
/// proof of possession, fetch the day's credential, chained payments within the cap, an
/// over-cap receipt refused, a lent credential refused, and a lost wallet re-registered.
#[test]
fn allowance_v2_walkthrough() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli { dir: tmp.path() };
    v2_issuer(&cli);
    let mut addr = std::collections::HashMap::new();
    for w in ["a", "b", "c", "mallory"] {
        let file = format!("{w}.json");
        addr.insert(
            w,
            cli.ok(&["wallet", "create", "--wallet", &file])
                .trim()
                .to_owned(),
        );
    }
    for (w, who) in [("b", "Bob"), ("c", "Carol")] {
        let file = format!("{w}.json");
        cli.ok(&[
            "wallet",
            "register",
            "--wallet",
            &file,
            "--identity",
            who,
            "--class",
            "standard",
        ]);
        let out = cli.ok(&[
            "wallet",
            "credential",
            "--wallet",
            &file,
            "--class",
            "standard",
        ]);
        assert!(out.contains("receive limit left today 200"), "{out}");
    }
    cli.ok(&[
        "wallet",
        "withdraw",
        "--wallet",
        "a.json",
        "--account",
        "alice",
        "--amount",
        "1000",
    ]);
    // A pays B 64 (one coin); B pays C 64 (B presents for its receipt: 64 of its 200);
    // C deposits (C presents: 64 of its 200).
    cli.ok(&[
        "wallet", "pay", "--wallet", "a.json", "--to", &addr["b"], "--amount", "64", "--out",
        "p1.bin",
    ]);
    let r: serde_json::Value =
        serde_json::from_str(&cli.ok(&["wallet", "receive", "--wallet", "b.json", "p1.bin"]))
            .unwrap();
    assert_eq!(r["accepted"], 1, "{r}");
    cli.ok(&[
        "wallet", "pay", "--wallet", "b.json", "--to", &addr["c"], "--amount", "64", "--out",
        "p2.bin",
    ]);
    cli.ok(&["wallet", "receive", "--wallet", "c.json", "p2.bin"]);
    // B used one slot of 100 to move its receipt on: 100 left today.
    let bal: serde_json::Value =
        serde_json::from_str(&cli.ok(&["wallet", "balance", "--wallet", "b.json"])).unwrap();
    assert_eq!(bal["receive_limit_left"]["standard"], 100, "{bal}");
    let out = cli.ok(&[
        "wallet",
        "deposit",
        "--wallet",
        "c.json",
        "--account",
        "shop",
    ]);
    assert!(out.contains("\"receipt\""), "{out}");
    assert_eq!(cli.account("shop"), 64);
    // B receives 64 and 32 more today. Its two slots of 100: the first went to the receipt
    // it paid on to C, the second covers one of these; the other is over B's cap.
    cli.ok(&[
        "wallet", "pay", "--wallet", "a.json", "--to", &addr["b"], "--amount", "64", "--out",
        "p3.bin",
    ]);
    cli.ok(&[
        "wallet", "pay", "--wallet", "a.json", "--to", &addr["b"], "--amount", "32", "--out",
        "p4.bin",
    ]);
    cli.ok(&["wallet", "receive", "--wallet", "b.json", "p3.bin"]);
    cli.ok(&["wallet", "receive", "--wallet", "b.json", "p4.bin"]);
    let (outcomes, ok) = deposit_outcomes(&cli, "b.json");
    assert!(!ok, "a refused coin fails the command");
    let accepted = outcomes.iter().filter(|o| !o["receipt"].is_null()).count();
    let refused: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o["error"].as_str())
        .collect();
    assert_eq!((accepted, refused.len()), (1, 1), "{outcomes:?}");
    assert!(refused[0].contains("receive limit"), "{outcomes:?}");
    let b_credited: u64 = outcomes
        .iter()
        .filter(|o| !o["receipt"].is_null())
        .map(|o| o["value"].as_u64().unwrap())
        .sum();
    // Mallory never registered: she gets no credential, so she cannot move what she
    // receives (and B's credential without B's secret is refused at redemption:
    // tests/allowance_v2.rs).
    let msg = cli.fails(&[
        "wallet",
        "credential",
        "--wallet",
        "mallory.json",
        "--class",
        "standard",
    ]);
    assert!(msg.contains("not registered"), "{msg}");
    cli.ok(&[
        "wallet",
        "pay",
        "--wallet",
        "a.json",
        "--to",
        &addr["mallory"],
        "--amount",
        "16",
        "--out",
        "p5.bin",
    ]);
    cli.ok(&["wallet", "receive", "--wallet", "mallory.json", "p5.bin"]);
    let (outcomes, ok) = deposit_outcomes(&cli, "mallory.json");
    assert!(!ok);
    assert!(
        outcomes[0]["error"]
            .as_str()
            .unwrap()
            .contains("not registered"),
        "{outcomes:?}"
    );
    // Bob lends her his credential for today (not his wallet secret): she copies it into
    // her wallet file. Her presentation carries a MAC on Bob's secret, not hers: refused.
    let b_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("b.json")).unwrap()).unwrap();
    let m_path = tmp.path().join("mallory.json");
    let mut m_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&m_path).unwrap()).unwrap();
    m_file["v2"]["credentials"] = b_file["v2"]["credentials"].clone();
    std::fs::write(&m_path, serde_json::to_vec(&m_file).unwrap()).unwrap();
    let (outcomes, ok) = deposit_outcomes(&cli, "mallory.json");
    assert!(!ok);
    let e = outcomes[0]["error"].as_str().unwrap();
    assert!(e.contains("presentation"), "{outcomes:?}");
    assert_eq!(
        cli.account("shop"),
        64 + b_credited,
        "nothing more was credited"
    );
    // Bob loses his wallet and registers a new one: the old one is revoked, and the new
    // one gets no second credential for today.
    cli.ok(&["wallet", "create", "--wallet", "b2.json"]);
    let out = cli.ok(&[
        "wallet",
        "register",
        "--wallet",
        "b2.json",
        "--identity",
        "Bob",
        "--class",
        "standard",
    ]);
    assert!(out.contains(&format!("revoked {}", addr["b"])), "{out}");
    let msg = cli.fails(&[
        "wallet",
        "credential",
        "--wallet",
        "b2.json",
        "--class",
        "standard",
    ]);
    assert!(msg.contains("previous wallet"), "{msg}");
}
