//! The issuer over HTTP: [`HttpIssuer`] implements [`IssuerApi`] against `microcash serve`,
//! so the wallet commands work the same against a live server as on local files; and
//! [`submit_batch`] uploads a batch file and follows its progress.

use std::path::Path;
use std::time::Duration;

use microcash_kernels::bls::G1Affine;
use serde_json::{json, Value};

use crate::issuer::{IssuerApi, IssuerError, Receipt};
use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::deposit::{AccountName, BlindedOutput, Deposit, SwapRequest};
use crate::protocol::encoding::{Encode, Writer};
use crate::protocol::keyset::{KeysetJson, KeysetList};
use crate::protocol::policy::Policy;
use crate::protocol::stealth::Address;

/// A client error (transport, or a server answer that is not what the API promises).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Transport.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// An unexpected answer.
    #[error("server answered {status}: {body}")]
    Unexpected {
        /// Status.
        status: u16,
        /// Body text.
        body: String,
    },
    /// Local file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The issuer behind a `microcash serve` URL.
pub struct HttpIssuer {
    base: String,
    http: reqwest::blocking::Client,
    token: Option<String>,
    keysets: KeysetList,
    policy: Policy,
}

fn remote(status: u16, body: &Value) -> IssuerError {
    IssuerError::Remote {
        status,
        code: body["error"]["code"]
            .as_str()
            .or_else(|| body["verdict"].as_str())
            .unwrap_or("unknown")
            .to_owned(),
        message: body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string()),
    }
}

fn transport(e: reqwest::Error) -> IssuerError {
    IssuerError::Remote {
        status: 0,
        code: "transport".into(),
        message: e.to_string(),
    }
}

fn hex_of(v: &impl Encode) -> String {
    hex::encode(v.to_bytes())
}

impl HttpIssuer {
    /// Connects: fetches the keysets and the policy.
    pub fn connect(base: &str, token: Option<String>) -> Result<HttpIssuer, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let base = base.trim_end_matches('/').to_owned();
        let get = |path: &str| get_json(&http, &format!("{base}{path}"));
        let keys = get("/v1/keys")?;
        let items: Vec<KeysetJson> =
            serde_json::from_value(keys["keysets"].clone()).map_err(|e| {
                ClientError::Unexpected {
                    status: 200,
                    body: format!("keysets: {e}"),
                }
            })?;
        let keysets = KeysetList::from_json(&items).map_err(|e| ClientError::Unexpected {
            status: 200,
            body: e.to_string(),
        })?;
        let policy: Policy =
            serde_json::from_value(get("/v1/policy")?).map_err(|e| ClientError::Unexpected {
                status: 200,
                body: format!("policy: {e}"),
            })?;
        Ok(HttpIssuer {
            base,
            http,
            token,
            keysets,
            policy,
        })
    }

    fn post(
        &self,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> Result<(u16, Value), IssuerError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(transport)?;
        let status = resp.status().as_u16();
        let value: Value = resp.json().map_err(transport)?;
        Ok((status, value))
    }

    fn signatures(
        &self,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> Result<Vec<G1Affine>, IssuerError> {
        let (status, v) = self.post(path, body, bearer)?;
        if status != 200 {
            return Err(remote(status, &v));
        }
        v["signatures"]
            .as_array()
            .ok_or_else(|| remote(status, &v))?
            .iter()
            .map(|s| {
                let bytes: [u8; 48] = s
                    .as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| remote(status, &v))?;
                G1Affine::from_compressed(&bytes).map_err(|_| remote(status, &v))
            })
            .collect()
    }
}

impl IssuerApi for HttpIssuer {
    fn keysets(&self) -> &KeysetList {
        &self.keysets
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn withdraw(
        &self,
        account: &AccountName,
        outputs: &[BlindedOutput],
        _now: u64,
    ) -> Result<Vec<G1Affine>, IssuerError> {
        let outs: Vec<String> = outputs
            .iter()
            .map(|o| {
                let mut w = Writer::new();
                o.encode(&mut w);
                hex::encode(w.finish())
            })
            .collect();
        self.signatures(
            "/v1/withdraw",
            json!({ "account": account.as_str(), "outputs": outs }),
            self.token.as_deref(),
        )
    }

    fn swap(&self, request: &SwapRequest, _now: u64) -> Result<Vec<G1Affine>, IssuerError> {
        self.signatures("/v1/swap", json!({ "request": hex_of(request) }), None)
    }

    fn register_wallet(&self, address: &Address, identity: &str) -> Result<(), IssuerError> {
        let (status, v) = self.post(
            "/v1/wallets",
            json!({ "address": address.to_string(), "identity": identity }),
            self.token.as_deref(),
        )?;
        if status != 200 {
            return Err(remote(status, &v));
        }
        Ok(())
    }

    fn issue_allowance(
        &self,
        request: &AllowanceRequest,
        _now: u64,
    ) -> Result<Vec<G1Affine>, IssuerError> {
        self.signatures("/v1/allowance", json!({ "request": hex_of(request) }), None)
    }

    fn deposit(&self, deposit: &Deposit, _now: u64) -> Result<Receipt, IssuerError> {
        let (status, v) = self.post("/v1/deposits", json!({ "deposit": hex_of(deposit) }), None)?;
        let d = &v["detail"];
        if status == 200 && v["verdict"] == "accepted" {
            return Ok(Receipt {
                receipt_id: d["receipt"].as_u64().unwrap_or(0),
                serial: deposit.coin.serial().to_string(),
                value: d["value"].as_u64().unwrap_or(0),
                account: d["account"].as_str().unwrap_or("").to_owned(),
                replayed: d["replayed"].as_bool().unwrap_or(false),
            });
        }
        Err(remote(status, &v))
    }
}

/// Uploads a batch file (streamed from disk); returns its id.
pub fn submit_batch(base: &str, file: &Path, token: &str) -> Result<String, ClientError> {
    let http = reqwest::blocking::Client::builder().timeout(None).build()?;
    let f = std::fs::File::open(file)?;
    let resp = http
        .post(format!("{}/v1/batches", base.trim_end_matches('/')))
        .bearer_auth(token)
        .body(reqwest::blocking::Body::new(f))
        .send()?;
    let status = resp.status().as_u16();
    let body = resp.text()?;
    if status != 202 {
        return Err(ClientError::Unexpected { status, body });
    }
    let v: Value = serde_json::from_str(&body).map_err(|_| ClientError::Unexpected {
        status,
        body: body.clone(),
    })?;
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or(ClientError::Unexpected { status, body })
}

/// GET a JSON document; anything but 200 is an error carrying the body.
fn get_json(http: &reqwest::blocking::Client, url: &str) -> Result<Value, ClientError> {
    json_answer(http.get(url))
}

/// Sends `request`; a 200 answer's JSON, or an error carrying the body.
fn json_answer(request: reqwest::blocking::RequestBuilder) -> Result<Value, ClientError> {
    let resp = request.send()?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(ClientError::Unexpected {
            status,
            body: resp.text().unwrap_or_default(),
        });
    }
    Ok(resp.json()?)
}

/// The status of a batch (the uploading partner's token).
pub fn batch_status(base: &str, id: &str, token: &str) -> Result<Value, ClientError> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    json_answer(
        http.get(format!("{}/v1/batches/{id}", base.trim_end_matches('/')))
            .bearer_auth(token),
    )
}
