//! Kill tests on the wallet side: the `microcash` binary is stopped at every journalled
//! point of withdraw, allowance, swap, pay and deposit (`MICROCASH_CRASH_AT`, an abort: no
//! destructor runs, nothing more is written — what `kill -9` does), and with `kill -9` at
//! random moments; after `wallet recover` no value is lost or made, and no coin is spent
//! twice by the wallet itself:
//!
//! alice's account + shop's account + wallet A + wallet B (the payee) = what alice was
//! funded with, at every step; A holds exactly the allowance it asked for and the issuer
//! charged exactly that; every coin deposits at the end, none as a double spend.
//!
//! Run against the issuer's local files and against `microcash serve`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const FUNDED: u64 = 1_000_000;
const ADMIN: &str = "admin-secret-for-the-kill-test";

/// Every point where the wallet can be stopped mid-operation.
const CRASH_POINTS: &[&str] = &[
    "withdraw:journalled",
    "withdraw:answered",
    "withdraw:finished",
    "allowance:journalled",
    "allowance:answered",
    "allowance:finished",
    "swap:journalled",
    "swap:answered",
    "swap:finished",
    "pay:journalled",
    "pay:written",
    "pay:finished",
    "deposit:journalled",
    "deposit:answered",
    "deposit:finished",
];

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// `--server URL` when the wallet talks to `serve`.
    server: Option<(Child, String)>,
    alice_token: String,
    b_address: String,
    /// Allowance A asked for (and must hold).
    allowance: u64,
}

impl World {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_microcash"));
        c.args(args)
            .current_dir(&self.dir)
            .env_remove("MICROCASH_CRASH_AT")
            .env_remove("MICROCASH_ISSUER")
            .stdin(Stdio::null());
        // Against a server the wallet names it; `--issuer` and `--server` exclude each other.
        if self.server.is_none() {
            c.env("MICROCASH_ISSUER", self.dir.join("issuer"));
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("microcash runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wallet command arguments reaching the issuer, with `token` for the server.
    fn at(&self, token: &str) -> Vec<String> {
        match &self.server {
            Some((_, base)) => vec![
                "--server".into(),
                base.clone(),
                "--token".into(),
                token.into(),
            ],
            None => vec![],
        }
    }

    fn wallet(&self, args: &[&str], token: &str) -> Vec<String> {
        let mut v: Vec<String> = vec!["wallet".into()];
        v.extend(args.iter().map(|s| s.to_string()));
        v.extend(self.at(token));
        v
    }

    fn balance(&self, wallet: &str) -> serde_json::Value {
        let args = self.wallet(&["balance", "--wallet", wallet], &self.alice_token);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    fn account(&self, name: &str) -> u64 {
        let line = self.ok(&["account", "show", name]);
        line.trim().rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn recover(&self) {
        let args = self.wallet(&["recover", "--wallet", "a.json"], &self.alice_token);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let report: serde_json::Value = serde_json::from_str(&self.ok(&args)).unwrap();
        assert_eq!(report["still_pending"], 0, "{report}");
    }

    /// B takes the payment if it was written (once: a re-written payment is the same).
    fn receive(&self, out: &Path) {
        if out.exists() {
            let args = self.wallet(
                &["receive", "--wallet", "b.json", out.to_str().unwrap()],
                &self.alice_token,
            );
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.ok(&args);
            std::fs::remove_file(out).unwrap();
        }
    }

    /// The wallet's own invariants: nothing pending, nothing in flight, the allowance
    /// asked for is held.
    fn check_wallet(&self) -> (u64, u64) {
        let a = self.balance("a.json");
        assert_eq!(a["pending_operations"], 0, "{a}");
        assert_eq!(a["in_flight"], 0, "{a}");
        assert_eq!(a["allowance"].as_u64().unwrap(), self.allowance, "{a}");
        let b = self.balance("b.json");
        (
            a["balance"].as_u64().unwrap(),
            b["balance"].as_u64().unwrap(),
        )
    }

    /// Value is conserved across the issuer's accounts and both wallets.
    fn check_conservation(&self) {
        let (a, b) = self.check_wallet();
        if self.server.is_none() {
            let total = self.account("alice") + self.account("shop") + a + b;
            assert_eq!(total, FUNDED, "alice + shop + A ({a}) + B ({b})");
        }
    }

    /// The four operations, each with `crash` set; after each one that died, recover.
    /// Withdraw 300, ask for 10 of allowance, pay B 37 (a split: a swap), deposit 5 (often
    /// a split too).
    fn ops(&self, out: &Path) -> [Vec<String>; 4] {
        let t = &self.alice_token;
        let out = out.to_str().unwrap();
        let b = &self.b_address;
        let a = ["--wallet", "a.json"];
        [
            self.wallet(
                &[
                    &["withdraw"],
                    &a[..],
                    &["--account", "alice", "--amount", "300"],
                ]
                .concat(),
                t,
            ),
            self.wallet(&[&["allowance"], &a[..], &["--amount", "10"]].concat(), t),
            self.wallet(
                &[
                    &["pay"],
                    &a[..],
                    &["--to", b, "--amount", "37", "--out", out],
                ]
                .concat(),
                t,
            ),
            self.wallet(
                &[
                    &["deposit"],
                    &a[..],
                    &["--account", "shop", "--amount", "5"],
                ]
                .concat(),
                t,
            ),
        ]
    }

    fn round(&mut self, crash: Option<&str>, out: &Path) {
        let ops = self.ops(out);
        for (k, op) in ops.iter().enumerate() {
            let args: Vec<&str> = op.iter().map(String::as_str).collect();
            let mut c = self.cmd(&args);
            if let Some(point) = crash {
                c.env("MICROCASH_CRASH_AT", point);
            }
            let status = c.output().unwrap().status;
            let died = !status.success();
            if died {
                assert!(crash.is_some(), "{args:?} failed without a crash point");
            }
            self.recover();
            if k == 1 {
                // A crash before the request reached the issuer is finished by recover, too.
                self.allowance += 10;
            }
            self.receive(out);
            self.check_conservation();
        }
    }

    fn finish(mut self) {
        // Every coin either wallet holds deposits, and none is a double spend.
        for w in ["a.json", "b.json"] {
            let args = self.wallet(
                &["deposit", "--wallet", w, "--account", "shop"],
                &self.alice_token,
            );
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.run(&args);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(report["refused"], 0, "{report}");
        }
        // The issuer charged exactly the allowance A holds: the rest of the day's cap (1000)
        // is still there, one more unit is not.
        let rest = (1000 - self.allowance).to_string();
        let args = self.wallet(&["allowance", "--wallet", "a.json", "--amount", &rest], "");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args);
        let args = self.wallet(&["allowance", "--wallet", "a.json", "--amount", "1"], "");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(!self.run(&args).status.success(), "the cap holds");
        if let Some((mut child, _)) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Both wallets are empty and every unit is on an account again.
        assert_eq!(self.account("alice") + self.account("shop"), FUNDED);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn world(with_server: bool) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let mut w = World {
        _tmp: tmp,
        dir,
        server: None,
        alice_token: String::new(),
        b_address: String::new(),
        allowance: 0,
    };
    // B deposits what it received at the end without asking for allowance: the class does
    // not require it here (A still asks for allowance, so that path is journalled too).
    let policy = r#"
[epochs]
withdraw_days = 30
deposit_days = 90
max_denomination_exp = 16

[allowance]
daily_limit = 1000

[swap]
fee = 0

[class.standard]
max_hops = 8
deposit_deadline_days = 60
min_payment = 1
max_payment = 1000000
allowance_required = false
merchant_only_deposit = false
"#;
    std::fs::write(w.dir.join("policy.toml"), policy).unwrap();
    w.ok(&["issuer", "init", "--policy", "policy.toml"]);
    let created = w.ok(&["account", "create", "alice"]);
    w.alice_token = created
        .split_whitespace()
        .find(|t| t.starts_with("mct_"))
        .unwrap()
        .to_owned();
    w.ok(&["account", "fund", "alice", &FUNDED.to_string()]);
    w.ok(&["account", "create", "shop"]);
    w.ok(&["wallet", "create", "--wallet", "a.json"]);
    w.b_address = w
        .ok(&["wallet", "create", "--wallet", "b.json"])
        .trim()
        .to_owned();
    if with_server {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let child = w
            .cmd(&[
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--store",
                "issuer",
            ])
            .env("MICROCASH_ADMIN_TOKEN", ADMIN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::blocking::Client::new();
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            http.get(format!("{base}/healthz")).send().is_ok()
        });
        assert!(up, "server did not start");
        w.server = Some((child, base));
    }
    let args = w.wallet(
        &["register", "--wallet", "a.json", "--identity", "alice"],
        ADMIN,
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.ok(&args);
    w
}

fn crash_at_every_point(with_server: bool) {
    let mut w = world(with_server);
    let out = w.dir.join("payment.mcp");
    w.round(None, &out);
    for point in CRASH_POINTS {
        w.round(Some(point), &out);
    }
    w.finish();
}

#[test]
fn a_wallet_stopped_at_any_journalled_point_recovers_without_loss_local() {
    crash_at_every_point(false);
}

#[test]
fn a_wallet_stopped_at_any_journalled_point_recovers_without_loss_over_http() {
    crash_at_every_point(true);
}

/// `kill -9` at random moments (seeded, so a failure replays) during every operation.
#[test]
fn kill_9_at_random_moments_loses_nothing() {
    let mut w = world(false);
    let out = w.dir.join("payment.mcp");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for round in 0..12 {
        let ops = w.ops(&out);
        for (k, op) in ops.iter().enumerate() {
            let args: Vec<&str> = op.iter().map(String::as_str).collect();
            let mut child = w
                .cmd(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let delay = next() % 120;
            std::thread::sleep(Duration::from_millis(delay));
            let _ = child.kill(); // SIGKILL, if still running
            let status = child.wait().unwrap();
            // The allowance is asked for at most once per round, killed or not.
            let allowance_before = w.allowance;
            w.recover();
            if k == 1 {
                let held = w.balance("a.json")["allowance"].as_u64().unwrap();
                // Killed before the request was journalled: nothing was asked.
                assert!(
                    held == allowance_before || held == allowance_before + 10,
                    "round {round}: allowance {held} after {allowance_before} ({status:?})"
                );
                w.allowance = held;
            }
            w.receive(&out);
            w.check_conservation();
        }
    }
    w.finish();
}
