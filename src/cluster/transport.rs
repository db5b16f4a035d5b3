//! JetStream plumbing: the streams and buckets, publishing with a message id (retried
//! through a leader election: the id makes a retry that already landed a no-op), and
//! reading the *first* message of a subject, which is how every reader agrees on one
//! version when a message was published twice.

use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::{self, kv, stream};
use async_nats::HeaderMap;

use super::{nats_err, ClusterError};

/// Work queue of raw chunks (`mc.work.<batch>.<chunk>`).
pub const WORK_STREAM: &str = "MC_WORK";
/// The global order: announces (`mc.batch`) and verified chunks (`mc.seq.<batch>.<chunk>`).
pub const SEQ_STREAM: &str = "MC_SEQ";
/// Partition votes (`mc.vote.<batch>.<chunk>.<partition>`).
pub const VOTES_STREAM: &str = "MC_VOTES";
/// Partition leases (`partition-<P>` → owner id), expiring after the lease time.
pub const OWNERS_BUCKET: &str = "MC_OWNERS";
/// Cluster settings (`partitions`).
pub const CONFIG_BUCKET: &str = "MC_CONFIG";
/// Every batch's announce (`mc.batch.<content key hex>`): one per content, ever.
pub const ANNOUNCE_SUBJECTS: &str = "mc.batch.>";
/// How long chunks of a batch whose announce never came (an uploader that died mid-way)
/// stay in the work queue.
pub const WORK_MAX_AGE: Duration = Duration::from_secs(86_400);

/// The announce subject of the batch with content key `key`.
pub fn announce_subject(key: &[u8; 16]) -> String {
    format!("mc.batch.{}", hex::encode(key))
}
/// Largest message the streams take (the server's `max_payload` is set to match).
pub const MESSAGE_BYTES_MAX: usize = 8 << 20;
/// Raw bytes per work chunk (the uploader cuts by records and by this).
pub const WORK_CHUNK_BYTES_MAX: usize = 4 << 20;
/// How long a re-publish with the same message id is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// How long a publish, or a read, keeps retrying through an election before giving up.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// A connection to the cluster's JetStream.
#[derive(Clone)]
pub struct Nats {
    /// The JetStream context.
    pub js: jetstream::Context,
}

/// Connects to the comma-separated server URLs (any of them will do; the client moves to
/// another when one dies).
pub async fn connect(urls: &str, name: &str) -> Result<Nats, ClusterError> {
    let addrs: Vec<async_nats::ServerAddr> = urls
        .split(',')
        .map(|u| u.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(nats_err("server address"))?;
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs)
        .await
        .map_err(nats_err("connect"))?;
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    Ok(Nats { js })
}

impl Nats {
    /// Creates the streams and buckets if missing, with `replicas` copies each, and
    /// records the partition count (refusing to change it: keys would move).
    pub async fn set_up(
        &self,
        replicas: usize,
        partitions: u32,
        lease: Duration,
    ) -> Result<(), ClusterError> {
        let base = |name: &str, subjects: Vec<String>| stream::Config {
            name: name.to_owned(),
            subjects,
            num_replicas: replicas,
            max_message_size: MESSAGE_BYTES_MAX as i32,
            duplicate_window: DUPLICATE_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let work = stream::Config {
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: WORK_MAX_AGE,
            ..base(WORK_STREAM, vec!["mc.work.>".into()])
        };
        let seq = base(
            SEQ_STREAM,
            vec![ANNOUNCE_SUBJECTS.into(), "mc.seq.>".into()],
        );
        let votes = base(VOTES_STREAM, vec!["mc.vote.>".into()]);
        for config in [work, seq, votes] {
            let name = config.name.clone();
            self.js
                .get_or_create_stream(config)
                .await
                .map_err(nats_err(&format!("create stream {name}")))?;
        }
        self.bucket(OWNERS_BUCKET, lease, replicas).await?;
        let config = self.bucket(CONFIG_BUCKET, Duration::ZERO, replicas).await?;
        match self.partitions().await {
            Ok(p) if p == partitions => Ok(()),
            Ok(p) => Err(ClusterError::Config(format!(
                "the cluster has {p} partitions; changing it to {partitions} would move keys"
            ))),
            Err(_) => {
                config
                    .create("partitions", partitions.to_string().into())
                    .await
                    .map_err(nats_err("record the partition count"))?;
                Ok(())
            }
        }
    }

    /// Creates (if missing) and opens a KV bucket. The bucket's stream is made here, as
    /// the client's KV layer would make it: the client's own bucket creation first asks
    /// for account information in a form a 2.9 server does not answer.
    async fn bucket(
        &self,
        name: &str,
        max_age: Duration,
        replicas: usize,
    ) -> Result<kv::Store, ClusterError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: format!("KV_{name}"),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: 1,
                max_age,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(nats_err(&format!("create bucket {name}")))?;
        self.js
            .get_key_value(name)
            .await
            .map_err(nats_err(&format!("open bucket {name}")))
    }

    /// The cluster's partition count.
    pub async fn partitions(&self) -> Result<u32, ClusterError> {
        let raw = retry(
            "read the partition count (run `microcash cluster init`)",
            || async {
                let bucket = self
                    .js
                    .get_key_value(CONFIG_BUCKET)
                    .await
                    .map_err(|e| e.to_string())?;
                bucket.get("partitions").await.map_err(|e| e.to_string())
            },
        )
        .await?
        .ok_or_else(|| ClusterError::Config("no partition count recorded".into()))?;
        std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|p| *p >= 1)
            .ok_or_else(|| ClusterError::Config("unreadable partition count".into()))
    }

    /// A KV bucket handle.
    pub async fn bucket_handle(&self, name: &str) -> Result<kv::Store, ClusterError> {
        retry(&format!("open bucket {name}"), || async {
            self.js.get_key_value(name).await
        })
        .await
    }

    /// A stream handle.
    pub async fn stream(&self, name: &str) -> Result<stream::Stream, ClusterError> {
        retry(&format!("open stream {name}"), || async {
            self.js.get_stream(name).await
        })
        .await
    }

    /// Publishes `payload` on `subject` with message id `id` and waits for the stream's
    /// acknowledgement; returns the stream sequence (the original one when the id was
    /// seen inside the duplicate window).
    pub async fn publish(
        &self,
        subject: &str,
        id: &str,
        payload: Vec<u8>,
    ) -> Result<u64, ClusterError> {
        match self.send(subject, id, payload, false).await? {
            Published::Stored(seq) | Published::Duplicate(seq) => Ok(seq),
            Published::Refused => Err(ClusterError::Nats {
                context: format!("publish {subject}"),
                reason: "refused without a fence".into(),
            }),
        }
    }

    /// Publishes `payload` as the only message `subject` will ever hold: the stream
    /// refuses it when the subject already has one (`Nats-Expected-Last-Subject-Sequence:
    /// 0`). Returns the sequence, or `None` when a copy was stored first — a zombie
    /// owner's vote, a redelivered chunk's second verification, this very message from an
    /// attempt whose acknowledgement was lost. This is the fence: one vote per (chunk,
    /// partition), one verified message per chunk, one announce per content.
    pub async fn publish_once(
        &self,
        subject: &str,
        id: &str,
        payload: Vec<u8>,
    ) -> Result<Option<u64>, ClusterError> {
        Ok(match self.send(subject, id, payload, true).await? {
            Published::Stored(seq) => Some(seq),
            Published::Duplicate(_) | Published::Refused => None,
        })
    }

    /// One publish with message id `id` (and the fence when `fenced`), retried through
    /// elections: the id makes a retry of a publish that landed a duplicate, not a copy.
    async fn send(
        &self,
        subject: &str,
        id: &str,
        payload: Vec<u8>,
        fenced: bool,
    ) -> Result<Published, ClusterError> {
        let payload = bytes::Bytes::from(payload);
        retry(&format!("publish {subject}"), || async {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
            if fenced {
                headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
            }
            let ack = self
                .js
                .publish_with_headers(subject.to_owned(), headers, payload.clone())
                .await
                .map_err(|e| e.to_string())?;
            match ack.await {
                Ok(a) if a.duplicate => Ok(Published::Duplicate(a.sequence)),
                Ok(a) => Ok(Published::Stored(a.sequence)),
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    Ok(Published::Refused)
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }
}

/// What the stream did with a publish.
enum Published {
    /// Stored at this sequence.
    Stored(u64),
    /// Its message id was seen inside the duplicate window: stored before, at this sequence.
    Duplicate(u64),
    /// Fenced: the subject already holds a message.
    Refused,
}

/// The first message on `subject` at or after `from` in `stream`, or `None` yet.
pub async fn first(
    stream: &stream::Stream,
    subject: &str,
    from: u64,
) -> Result<Option<StreamMessage>, ClusterError> {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(20);
    loop {
        match stream.get_first_raw_message_by_subject(subject, from).await {
            Ok(m) => return Ok(Some(m)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(None)
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%subject, error = %e, "read failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(nats_err(&format!("read {subject}"))(e)),
        }
    }
}

/// Waits for the first message on `subject` at or after `from` (polling, backing off to
/// 50 ms while none is there).
pub async fn wait_first(
    stream: &stream::Stream,
    subject: &str,
    from: u64,
) -> Result<StreamMessage, ClusterError> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(m) = first(stream, subject, from).await? {
            return Ok(m);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs `op` until it succeeds or [`RETRY_FOR`] has passed (a NATS node dying costs an
/// election of a few seconds).
pub(crate) async fn retry<T, E: std::fmt::Display, F, Fut>(
    context: &str,
    mut op: F,
) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%context, error = %e, "retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(nats_err(context)(e)),
        }
    }
}
