//! Settlement in PostgreSQL: accounts (what workers resolve), batches, every record's
//! verdict, receipts of fresh acceptances, and balances as a view — plain tables a bank's
//! own tools can query. Every write is `INSERT … ON CONFLICT DO NOTHING` keyed by
//! (batch number, record), so an owner that replays a chunk after a crash writes nothing
//! twice; receipts are also unique by (epoch, serial), so the database itself refuses a
//! second acceptance of one serial.

use tokio_postgres::{Client, NoTls};

use crate::engine::{RecordVerdict, Verdict};

use super::messages::Announce;
use super::ClusterError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mc_accounts (
    name text PRIMARY KEY,
    merchant boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS mc_batches (
    batch_seq bigint PRIMARY KEY,
    batch_key bytea NOT NULL,
    batch_id bytea NOT NULL,
    records bigint NOT NULL,
    chunks integer NOT NULL,
    cleared_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS mc_verdicts (
    batch_seq bigint NOT NULL,
    record bigint NOT NULL,
    code text NOT NULL,
    verdict jsonb NOT NULL,
    PRIMARY KEY (batch_seq, record)
);
CREATE TABLE IF NOT EXISTS mc_receipts (
    batch_seq bigint NOT NULL,
    record bigint NOT NULL,
    receipt bigint NOT NULL,
    epoch bigint NOT NULL,
    serial bytea NOT NULL,
    account text NOT NULL,
    value bigint NOT NULL,
    deposit_digest bytea NOT NULL,
    PRIMARY KEY (batch_seq, record),
    UNIQUE (epoch, serial)
);
CREATE OR REPLACE VIEW mc_balances AS
    SELECT account, sum(value)::bigint AS credited, count(*) AS coins
    FROM mc_receipts GROUP BY account;
CREATE TABLE IF NOT EXISTS mc_applied (
    partition integer PRIMARY KEY,
    batch_seq bigint NOT NULL,
    chunk integer NOT NULL
);
";

/// Connects (the connection runs on its own task; its end is logged).
pub async fn connect(conn: &str) -> Result<Client, ClusterError> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

/// Creates the tables and the balances view if missing.
pub async fn migrate(client: &Client) -> Result<(), ClusterError> {
    client.batch_execute(SCHEMA).await?;
    Ok(())
}

/// Adds accounts (existing names keep their row).
pub async fn add_accounts(
    client: &Client,
    accounts: &[(String, bool)],
) -> Result<u64, ClusterError> {
    let (names, merchant): (Vec<&str>, Vec<bool>) =
        accounts.iter().map(|(n, m)| (n.as_str(), *m)).unzip();
    Ok(client
        .execute(
            "INSERT INTO mc_accounts SELECT * FROM UNNEST($1::text[], $2::bool[]) \
             ON CONFLICT (name) DO NOTHING",
            &[&names, &merchant],
        )
        .await?)
}

/// `Some(merchant)` for every name that exists, `None` for the others.
pub async fn account_facts(
    client: &Client,
    names: Vec<String>,
) -> Result<Vec<(String, Option<bool>)>, ClusterError> {
    let rows = client
        .query(
            "SELECT name, merchant FROM mc_accounts WHERE name = ANY($1)",
            &[&names],
        )
        .await?;
    let known: std::collections::HashMap<String, bool> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(names
        .into_iter()
        .map(|n| {
            let m = known.get(&n).copied();
            (n, m)
        })
        .collect())
}

/// Records a batch (once).
pub async fn record_batch(
    client: &Client,
    batch_seq: u64,
    announce: &Announce,
    cleared_at: u64,
) -> Result<(), ClusterError> {
    client
        .execute(
            "INSERT INTO mc_batches VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &(batch_seq as i64),
                &announce.batch_key.as_slice(),
                &announce.batch_id.as_slice(),
                &(announce.records as i64),
                &(announce.chunks as i32),
                &(cleared_at as i64),
            ],
        )
        .await?;
    Ok(())
}

/// A record an owner settles: its verdict, and its coin serial and epoch when accepted.
pub struct HomeRecord<'a> {
    /// The verdict line.
    pub verdict: &'a RecordVerdict,
    /// Coin serial, epoch and deposit digest of a fresh acceptance.
    pub fresh: Option<([u8; 32], u32, [u8; 32])>,
}

/// Writes one chunk's home records of `partition` in one transaction, with the
/// partition's progress. Idempotent.
pub async fn write_chunk(
    client: &mut Client,
    partition: u32,
    batch_seq: u64,
    chunk: u32,
    records: &[HomeRecord<'_>],
) -> Result<(), ClusterError> {
    let tx = client.transaction().await?;
    let mut v_rec = Vec::new();
    let mut v_code = Vec::new();
    let mut v_json = Vec::new();
    let (mut r_rec, mut r_id, mut r_epoch, mut r_serial, mut r_acct, mut r_value, mut r_digest) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for h in records {
        let v = h.verdict;
        v_rec.push(v.record as i64);
        v_code.push(v.code.as_str());
        v_json.push(serde_json::to_string(v).map_err(|e| ClusterError::Message {
            subject: format!("verdict of record {}", v.record),
            reason: e.to_string(),
        })?);
        if let (
            Some((serial, epoch, digest)),
            Verdict::Accepted {
                receipt,
                value,
                account,
                replayed: false,
            },
        ) = (h.fresh, &v.verdict)
        {
            r_rec.push(v.record as i64);
            r_id.push(*receipt as i64);
            r_epoch.push(i64::from(epoch));
            r_serial.push(serial.to_vec());
            r_acct.push(account.as_str());
            r_value.push(*value as i64);
            r_digest.push(digest.to_vec());
        }
    }
    let seq = batch_seq as i64;
    tx.execute(
        "INSERT INTO mc_verdicts SELECT $1, r, c, j::jsonb \
         FROM UNNEST($2::int8[], $3::text[], $4::text[]) AS t(r, c, j) ON CONFLICT DO NOTHING",
        &[&seq, &v_rec, &v_code, &v_json],
    )
    .await?;
    tx.execute(
        "INSERT INTO mc_receipts SELECT $1, r, i, e, s, a, v, d \
         FROM UNNEST($2::int8[], $3::int8[], $4::int8[], $5::bytea[], $6::text[], $7::int8[], \
                     $8::bytea[]) AS t(r, i, e, s, a, v, d) \
         ON CONFLICT (batch_seq, record) DO NOTHING",
        &[
            &seq, &r_rec, &r_id, &r_epoch, &r_serial, &r_acct, &r_value, &r_digest,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO mc_applied VALUES ($1, $2, $3) ON CONFLICT (partition) \
         DO UPDATE SET batch_seq = EXCLUDED.batch_seq, chunk = EXCLUDED.chunk",
        &[&(partition as i32), &seq, &(chunk as i32)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records of a batch with a verdict so far.
pub async fn verdict_count(client: &Client, batch_seq: u64) -> Result<u64, ClusterError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM mc_verdicts WHERE batch_seq = $1",
            &[&(batch_seq as i64)],
        )
        .await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// A batch's verdicts (JSON lines in record order) and its counts per code.
pub async fn verdicts(
    client: &Client,
    batch_seq: u64,
) -> Result<Vec<(String, String)>, ClusterError> {
    let rows = client
        .query(
            "SELECT code, verdict::text FROM mc_verdicts WHERE batch_seq = $1 ORDER BY record",
            &[&(batch_seq as i64)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Value newly credited by a batch, per account.
pub async fn credits(client: &Client, batch_seq: u64) -> Result<Vec<(String, u64)>, ClusterError> {
    let rows = client
        .query(
            "SELECT account, sum(value)::bigint FROM mc_receipts WHERE batch_seq = $1 \
             GROUP BY account ORDER BY account",
            &[&(batch_seq as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64))
        .collect())
}
