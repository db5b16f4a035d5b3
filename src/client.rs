//! The issuer over HTTP: [`HttpIssuer`] implements [`IssuerApi`] against `microcash serve`,
//! so the wallet commands work the same against a live server as on local files; and
//! [`submit_batch`] uploads a batch file and follows its progress.

use std::path::Path;
use std::time::Duration;

use microcash_kernels::bls::G1Affine;
use serde_json::{json, Value};

use crate::issuer::{CallError, IssuerApi, Receipt, RemoteFailure};
use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::credential::{
    CredentialIssue, CredentialKeys, CredentialRequest, Registration,
};
use crate::protocol::deposit::{AccountName, BlindedOutput, Deposit, SwapRequest};
use crate::protocol::encoding::{Decode, Encode, Writer};
use crate::protocol::keyset::{KeysetJson, KeysetList};
use crate::protocol::policy::Policy;
use crate::protocol::stealth::Address;
use crate::store::files::CredentialKeyJson;

/// A client error: the server's refusal, the transport, or an answer that is not what the
/// API promises.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The issuer answered with an error (or a verdict other than accepted).
    #[error("issuer server: {code} ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The stable error or verdict code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Transport: no (complete) answer.
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
    credentials: CredentialKeys,
}

impl RemoteFailure for ClientError {
    fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<ClientError> for CallError {
    fn from(e: ClientError) -> Self {
        CallError::Remote(Box::new(e))
    }
}

/// The string at a JSON pointer of an answer.
fn text_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// An error answer: the stable code from `{"error": {"code"}}` or `{"verdict"}`.
fn refused(status: u16, body: &Value) -> ClientError {
    ClientError::Refused {
        status,
        code: text_at(body, "/error/code")
            .or_else(|| text_at(body, "/verdict"))
            .unwrap_or("unknown")
            .to_owned(),
        message: text_at(body, "/error/message")
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string()),
    }
}

/// A 200 answer that lacks what the API promises.
fn malformed(body: &Value) -> ClientError {
    ClientError::Unexpected {
        status: 200,
        body: body.to_string(),
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
        let items: Vec<KeysetJson> = serde_json::from_value(
            keys.get("keysets").cloned().unwrap_or_default(),
        )
        .map_err(|e| ClientError::Unexpected {
            status: 200,
            body: format!("keysets: {e}"),
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
        let published: Vec<CredentialKeyJson> =
            serde_json::from_value(keys.get("credential_keys").cloned().unwrap_or_default())
                .map_err(|e| ClientError::Unexpected {
                    status: 200,
                    body: format!("credential keys: {e}"),
                })?;
        let mut credentials = CredentialKeys::default();
        for k in &published {
            credentials.insert_public(k.key().map_err(|e| ClientError::Unexpected {
                status: 200,
                body: format!("credential keys: {e}"),
            })?);
        }
        Ok(HttpIssuer {
            base,
            http,
            token,
            keysets,
            policy,
            credentials,
        })
    }

    fn post(
        &self,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> Result<(u16, Value), ClientError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send()?;
        let status = resp.status().as_u16();
        let value: Value = resp.json()?;
        Ok((status, value))
    }

    fn signatures(
        &self,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> Result<Vec<G1Affine>, ClientError> {
        let (status, v) = self.post(path, body, bearer)?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        v.get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(&v))?
            .iter()
            .map(|s| {
                let bytes: [u8; 48] = s
                    .as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| malformed(&v))?;
                G1Affine::from_compressed(&bytes).map_err(|_| malformed(&v))
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
    ) -> Result<Vec<G1Affine>, CallError> {
        let outs: Vec<String> = outputs
            .iter()
            .map(|o| {
                let mut w = Writer::new();
                o.encode(&mut w);
                hex::encode(w.finish())
            })
            .collect();
        Ok(self.signatures(
            "/v1/withdraw",
            json!({ "account": account.as_str(), "outputs": outs }),
            self.token.as_deref(),
        )?)
    }

    fn swap(&self, request: &SwapRequest, _now: u64) -> Result<Vec<G1Affine>, CallError> {
        Ok(self.signatures("/v1/swap", json!({ "request": hex_of(request) }), None)?)
    }

    fn register_wallet(&self, address: &Address, identity: &str) -> Result<(), CallError> {
        let (status, v) = self.post(
            "/v1/wallets",
            json!({ "address": address.to_string(), "identity": identity }),
            self.token.as_deref(),
        )?;
        if status != 200 {
            return Err(refused(status, &v).into());
        }
        Ok(())
    }

    fn issue_allowance(
        &self,
        request: &AllowanceRequest,
        _now: u64,
    ) -> Result<Vec<G1Affine>, CallError> {
        Ok(self.signatures("/v1/allowance", json!({ "request": hex_of(request) }), None)?)
    }

    fn credential_keys(&self) -> &CredentialKeys {
        &self.credentials
    }

    fn register_v2(&self, registration: &Registration) -> Result<Option<Address>, CallError> {
        let (status, v) = self.post(
            "/v1/register",
            json!({ "request": hex_of(registration) }),
            self.token.as_deref(),
        )?;
        if status != 200 {
            return Err(refused(status, &v).into());
        }
        match v.get("revoked") {
            None | Some(Value::Null) => Ok(None),
            Some(r) => Ok(Some(
                r.as_str()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| malformed(&v))?,
            )),
        }
    }

    fn issue_credential(
        &self,
        request: &CredentialRequest,
        _now: u64,
    ) -> Result<([u8; 32], CredentialIssue), CallError> {
        let (status, v) =
            self.post("/v1/allowance", json!({ "request": hex_of(request) }), None)?;
        if status != 200 {
            return Err(refused(status, &v).into());
        }
        let key: [u8; 32] = text_at(&v, "/key")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed(&v))?;
        let issue = text_at(&v, "/credential")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| CredentialIssue::from_bytes(&b).ok())
            .ok_or_else(|| malformed(&v))?;
        Ok((key, issue))
    }

    fn deposit(&self, deposit: &Deposit, _now: u64) -> Result<Receipt, CallError> {
        let (status, v) = self.post("/v1/deposits", json!({ "deposit": hex_of(deposit) }), None)?;
        if status != 200 || text_at(&v, "/verdict") != Some("accepted") {
            return Err(refused(status, &v).into());
        }
        let receipt = || {
            Some(Receipt {
                receipt_id: v.pointer("/detail/receipt")?.as_u64()?,
                serial: deposit.coin.serial().to_string(),
                value: v.pointer("/detail/value")?.as_u64()?,
                account: text_at(&v, "/detail/account")?.to_owned(),
                replayed: v.pointer("/detail/replayed")?.as_bool()?,
            })
        };
        Ok(receipt().ok_or_else(|| malformed(&v))?)
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
    text_at(&v, "/id")
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
