//! The issuer directory:
//!
//! ```text
//! <dir>/policy.toml            the declarative policy (public)
//! <dir>/keysets.json           the published keyset list (public)
//! <dir>/secrets/               mode 0700
//! <dir>/secrets/epoch-NNNN.json  mode 0600: keyset id → BLS secret key (hex)
//! <dir>/state.redb             accounts, wallets, allowance, spent serials (see `store`)
//! ```
//!
//! Secret key files are created with mode 0600 from the start (never chmod-ed after the
//! fact) and their contents are never logged.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use microcash_kernels::bls;

use crate::protocol::credential::{CredentialKey, CredentialKeys, CredentialSecret};
use crate::protocol::keyset::{Keyset, KeysetId, KeysetJson, KeysetKind, KeysetList, Windows};
use crate::protocol::policy::{AllowanceScheme, Policy, DAY_SECS};

/// Policy class of allowance keysets (they follow the `[allowance]` section, not a class).
pub const ALLOWANCE_CLASS: &str = "allowance";

/// Errors reading or writing the issuer directory.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// I/O on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file with invalid contents.
    #[error("{path}: {reason}")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `issuer init` on a directory that already holds an issuer.
    #[error(
        "{0} already holds an issuer or other files (issuer init needs a new or empty directory)"
    )]
    AlreadyInitialised(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, reason: impl ToString) -> FilesError {
    FilesError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Writes `bytes` to `path` atomically (unique temp file, fsync, rename, fsync of the
/// directory) with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FilesError> {
    crate::spentset::write_atomic(path, bytes, mode).map_err(io_err(path))
}

/// Creates the directory `target` atomically: `build` fills a staging directory unique to
/// this process beside it, which is synced and renamed into place. An interrupted creation
/// leaves no half-made directory, and of two processes creating `target` at once exactly
/// one wins; the other gets `Ok(false)` (its staging copy is discarded) and `target` is the
/// winner's. Returns `Ok(true)` when this call created it.
pub fn create_dir_atomically<E: From<std::io::Error>>(
    target: &Path,
    build: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<bool, E> {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    fs::create_dir_all(&parent)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let nonce: u64 = rand::random();
    let staging = parent.join(format!(
        ".{name}.staging-{}-{nonce:016x}",
        std::process::id()
    ));
    let result = (|| {
        fs::create_dir_all(&staging)?;
        build(&staging)?;
        fs::File::open(&staging)?.sync_all()?;
        // rename(2) replaces an empty directory and fails on a non-empty one: the first
        // complete creation wins.
        match fs::rename(&staging, target) {
            Ok(()) => {
                fs::File::open(&parent)?.sync_all()?;
                Ok(true)
            }
            Err(_) if target.is_dir() && fs::read_dir(target)?.next().is_some() => Ok(false),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("{}: cannot create: {e}", target.display()),
            )
            .into()),
        }
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// The issuer's keys: policy, public keysets and the matching secret keys.
pub struct IssuerKeys {
    /// The policy.
    pub policy: Policy,
    /// The published keysets.
    pub keysets: KeysetList,
    secrets: HashMap<KeysetId, bls::SecretKey>,
    /// Allowance v2 credential keys of every epoch, with their secrets.
    pub credentials: CredentialKeys,
}

impl core::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "IssuerKeys({} keysets, secrets elided)",
            self.secrets.len()
        )
    }
}

/// Paths inside an issuer directory.
pub fn policy_path(dir: &Path) -> PathBuf {
    dir.join("policy.toml")
}
/// The public keyset list.
pub fn keysets_path(dir: &Path) -> PathBuf {
    dir.join("keysets.json")
}
/// The secrets directory.
pub fn secrets_dir(dir: &Path) -> PathBuf {
    dir.join("secrets")
}
/// The redb state file.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.redb")
}

impl IssuerKeys {
    /// Creates a new issuer in `dir` with `policy` and a first epoch starting at `now`.
    pub fn init(dir: &Path, policy: Policy, now: u64) -> Result<IssuerKeys, FilesError> {
        if keysets_path(dir).exists() {
            return Err(FilesError::AlreadyInitialised(dir.to_owned()));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let secrets = secrets_dir(dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&secrets)
            .map_err(io_err(&secrets))?;
        policy
            .validate()
            .map_err(|e| invalid(&policy_path(dir), e))?;
        write_atomic(&policy_path(dir), policy.to_toml().as_bytes(), 0o644)?;
        let mut keys = IssuerKeys {
            policy,
            keysets: KeysetList::default(),
            secrets: HashMap::new(),
            credentials: CredentialKeys::default(),
        };
        keys.add_epoch(dir, now)?;
        Ok(keys)
    }

    /// Key rotation: adds the next epoch, open for withdrawal from `now`. Older epochs keep
    /// their windows (they retire into deposit-only, then expire).
    pub fn add_epoch(&mut self, dir: &Path, now: u64) -> Result<u32, FilesError> {
        let epoch = self.keysets.latest_epoch() + 1;
        let start = now - now % DAY_SECS;
        let withdraw_until = start + self.policy.epochs.withdraw_days * DAY_SECS;
        let windows = Windows {
            withdraw_from: start,
            withdraw_until,
            deposit_until: withdraw_until + self.policy.epochs.deposit_days * DAY_SECS,
        };
        let mut rng = crate::os_rng();
        let mut new_secrets = BTreeMap::new();
        let mut new_keysets = Vec::new();
        let classes: Vec<(KeysetKind, String)> = self
            .policy
            .class
            .keys()
            .map(|c| (KeysetKind::Coin, c.clone()))
            .chain(std::iter::once((
                KeysetKind::Allowance,
                ALLOWANCE_CLASS.to_owned(),
            )))
            .collect();
        for (kind, class) in &classes {
            for exp in 0..=self.policy.epochs.max_denomination_exp {
                let sk = bls::SecretKey::generate(&mut rng);
                let ks = Keyset::new(*kind, epoch, exp, class, windows, sk.public_key())
                    .map_err(|e| invalid(&policy_path(dir), e))?;
                new_secrets.insert(ks.id.to_string(), hex::encode(sk.to_bytes()));
                new_keysets.push((ks, sk));
            }
        }
        // Secrets first: a published keyset without its secret would be unusable.
        write_secrets_file(
            &secrets_dir(dir).join(format!("epoch-{epoch:04}.json")),
            &new_secrets,
        )?;
        // Allowance v2: one credential key per v2 class, in its own secrets file (a
        // clearing store gets this file and not the signing keys).
        let mut new_credentials = Vec::new();
        let mut credential_secrets = BTreeMap::new();
        for (name, class) in &self.policy.class {
            if class.allowance_scheme == AllowanceScheme::V2 {
                let secret = CredentialSecret::generate(&mut rng);
                let key = CredentialKey::of(&secret, epoch, name)
                    .map_err(|e| invalid(&policy_path(dir), e))?;
                credential_secrets.insert(name.clone(), hex::encode(secret.to_bytes()));
                new_credentials.push((key, secret));
            }
        }
        if !credential_secrets.is_empty() {
            write_secrets_file(&credential_secrets_path(dir, epoch), &credential_secrets)?;
        }
        for (key, secret) in new_credentials {
            self.credentials.insert_secret(key, secret);
        }
        for (ks, sk) in new_keysets {
            self.secrets.insert(ks.id, sk);
            self.keysets
                .push(ks)
                .map_err(|e| invalid(&keysets_path(dir), e))?;
        }
        self.write_public(dir)?;
        Ok(epoch)
    }

    fn write_public(&self, dir: &Path) -> Result<(), FilesError> {
        let mut credential_keys: Vec<CredentialKeyJson> = self
            .credentials
            .iter()
            .map(CredentialKeyJson::from)
            .collect();
        credential_keys.sort_by(|a, b| (a.epoch, &a.class).cmp(&(b.epoch, &b.class)));
        let doc = PublicKeysets {
            version: 1,
            keysets: self.keysets.to_json(),
            credential_keys,
        };
        #[allow(
            clippy::expect_used,
            reason = "string-keyed maps and plain structs always serialise"
        )]
        let text = serde_json::to_vec_pretty(&doc).expect("keyset list serialises");
        write_atomic(&keysets_path(dir), &text, 0o644)
    }

    /// Loads an issuer directory, checking that every secret present matches its keyset's
    /// published public key.
    pub fn load(dir: &Path) -> Result<IssuerKeys, FilesError> {
        let ppath = policy_path(dir);
        let text = fs::read_to_string(&ppath).map_err(io_err(&ppath))?;
        let policy = Policy::from_toml(&text).map_err(|e| invalid(&ppath, e))?;
        let keysets = load_keysets(&keysets_path(dir))?;
        let mut secrets = HashMap::new();
        let sdir = secrets_dir(dir);
        // A store without secrets (a clearing store made from published parameters) can
        // verify and settle, but not sign: issuance then fails per keyset.
        let entries = if sdir.exists() {
            fs::read_dir(&sdir).map_err(io_err(&sdir))?.collect()
        } else {
            Vec::new()
        };
        for entry in entries {
            let path = entry.map_err(io_err(&sdir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            // Allowance v2 credential secrets have their own files (`load_credential_keys`).
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("credentials-") {
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            let map: BTreeMap<String, String> =
                serde_json::from_slice(&bytes).map_err(|e| invalid(&path, e))?;
            for (id_hex, sk_hex) in map {
                let id: [u8; 32] = hex::decode(&id_hex)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| invalid(&path, format!("bad keyset id {id_hex:?}")))?;
                let sk_bytes: [u8; 32] = hex::decode(&sk_hex)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| invalid(&path, format!("bad secret for keyset {id_hex}")))?;
                let sk = bls::SecretKey::from_bytes(&sk_bytes)
                    .map_err(|_| invalid(&path, format!("bad secret for keyset {id_hex}")))?;
                secrets.insert(KeysetId(id), sk);
            }
        }
        for ks in keysets.iter() {
            let Some(sk) = secrets.get(&ks.id) else {
                continue;
            };
            if sk.public_key() != ks.public_key {
                return Err(invalid(
                    &sdir,
                    format!(
                        "secret key of keyset {} does not match its public key",
                        ks.id
                    ),
                ));
            }
        }
        let credentials = load_credential_keys(dir)?;
        Ok(IssuerKeys {
            policy,
            keysets,
            secrets,
            credentials,
        })
    }

    /// The secret key of a keyset.
    pub fn secret(&self, id: &KeysetId) -> Option<&bls::SecretKey> {
        self.secrets.get(id)
    }
}

/// Writes a new epoch's secrets file: `{name → secret hex}`, created 0600 (never chmod-ed
/// afterwards) and fsynced. A file already there is what a crash between writing the
/// secrets and publishing the keys leaves — its keys were never published or used — and is
/// replaced.
fn write_secrets_file(path: &Path, secrets: &BTreeMap<String, String>) -> Result<(), FilesError> {
    if path.exists() {
        fs::remove_file(path).map_err(io_err(path))?;
    }
    #[allow(clippy::expect_used, reason = "a map of strings always serialises")]
    let text = serde_json::to_vec_pretty(secrets).expect("map of strings serialises");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(&text).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// The secrets file of an epoch's allowance v2 credential keys: `{class → 128-byte secret
/// hex}`, mode 0600.
pub fn credential_secrets_path(dir: &Path, epoch: u32) -> PathBuf {
    secrets_dir(dir).join(format!("credentials-{epoch:04}.json"))
}

/// A published allowance v2 credential key (the id is recomputed on load).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialKeyJson {
    /// Epoch.
    pub epoch: u32,
    /// Policy class.
    pub class: String,
    /// (C_x₀, X₁, X₂), compressed Pallas points, hex.
    pub params: [String; 3],
    /// The key id, hex (checked against the parameters).
    pub id: String,
}

impl From<&CredentialKey> for CredentialKeyJson {
    fn from(k: &CredentialKey) -> Self {
        CredentialKeyJson {
            epoch: k.epoch,
            class: k.class.clone(),
            params: k.params.map(hex::encode),
            id: hex::encode(k.id),
        }
    }
}

impl CredentialKeyJson {
    /// The key, its id checked against its parameters.
    pub fn key(&self) -> Result<CredentialKey, String> {
        let mut params = [[0u8; 32]; 3];
        for (o, h) in params.iter_mut().zip(&self.params) {
            *o = hex::decode(h)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| format!("bad credential key parameter {h:?}"))?;
        }
        let key = CredentialKey::new(self.epoch, &self.class, params).map_err(|e| e.to_string())?;
        if hex::encode(key.id) != self.id {
            return Err(format!(
                "credential key id {} does not match its parameters",
                self.id
            ));
        }
        Ok(key)
    }
}

/// The credential keys published in `dir`'s keysets.json, with the secrets of those whose
/// secrets file is present (the issuer, a clearing store); a secret that does not match its
/// published key is an error naming the file.
pub fn load_credential_keys(dir: &Path) -> Result<CredentialKeys, FilesError> {
    let path = keysets_path(dir);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let doc: PublicKeysets = serde_json::from_slice(&bytes).map_err(|e| invalid(&path, e))?;
    let mut keys = CredentialKeys::default();
    for item in &doc.credential_keys {
        let key = item.key().map_err(|e| invalid(&path, e))?;
        let spath = credential_secrets_path(dir, key.epoch);
        let secret = if spath.exists() {
            let bytes = fs::read(&spath).map_err(io_err(&spath))?;
            let map: BTreeMap<String, String> =
                serde_json::from_slice(&bytes).map_err(|e| invalid(&spath, e))?;
            match map.get(&key.class) {
                None => None,
                Some(h) => {
                    let raw: [u8; 128] = hex::decode(h)
                        .ok()
                        .and_then(|v| v.try_into().ok())
                        .ok_or_else(|| invalid(&spath, format!("bad secret for {}", key.class)))?;
                    let secret = CredentialSecret::from_bytes(&raw)
                        .ok_or_else(|| invalid(&spath, format!("bad secret for {}", key.class)))?;
                    if secret.params() != key.params {
                        return Err(invalid(
                            &spath,
                            format!(
                                "credential secret of class {} does not match its key",
                                key.class
                            ),
                        ));
                    }
                    Some(secret)
                }
            }
        } else {
            None
        };
        match secret {
            Some(secret) => keys.insert_secret(key, secret),
            None => keys.insert_public(key),
        }
    }
    Ok(keys)
}

/// The published keyset document.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct PublicKeysets {
    /// Format version (1).
    pub version: u32,
    /// The keysets.
    pub keysets: Vec<KeysetJson>,
    /// Allowance v2 credential keys (absent in files written before v2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_keys: Vec<CredentialKeyJson>,
}

/// Loads and checks a published keyset list (ids are recomputed).
pub fn load_keysets(path: &Path) -> Result<KeysetList, FilesError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let doc: PublicKeysets = serde_json::from_slice(&bytes).map_err(|e| invalid(path, e))?;
    if doc.version != 1 {
        return Err(invalid(
            path,
            format!("unsupported version {}", doc.version),
        ));
    }
    KeysetList::from_json(&doc.keysets).map_err(|e| invalid(path, e))
}
