//! etcd's native API over gRPC: `etcdserverpb.KV/Put` for writes and
//! `etcdserverpb.KV/Range` (linearizable, etcd's default) for reads.
//!
//! Only the messages and fields these two calls need are declared, by hand,
//! with the tags of etcd's `rpc.proto` and `kv.proto` (fields not declared are
//! skipped when decoding, as protobuf allows), so building needs no `protoc`.
//!
//! Each "connection" is one tonic channel (one HTTP/2 connection); its
//! `--pipeline` slots are concurrent requests multiplexed on it as streams.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint};

use crate::report::{OpKind, Recorder};
use crate::{Shared, Source};

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    /// The cluster's id.
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    /// The answering member's id.
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    /// The store's revision when the request was applied.
    #[prost(int64, tag = "3")]
    pub revision: i64,
    /// The member's Raft term.
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `etcdserverpb.PutRequest` (key and value only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// The value.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `etcdserverpb.PutResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    /// The header.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.RangeRequest` (a single key).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// False (the default): linearizable, confirmed with a quorum.
    #[prost(bool, tag = "7")]
    pub serializable: bool,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// Revision of the key's creation.
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// Revision of the key's last modification.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// Number of modifications since creation.
    #[prost(int64, tag = "4")]
    pub version: i64,
    /// The value.
    #[prost(bytes = "bytes", tag = "5")]
    pub value: Bytes,
}

/// `etcdserverpb.RangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    /// The header.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// The keys found.
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    /// More keys than returned exist.
    #[prost(bool, tag = "3")]
    pub more: bool,
    /// Number of keys in the range.
    #[prost(int64, tag = "4")]
    pub count: i64,
}

const PUT: &str = "/etcdserverpb.KV/Put";
const RANGE: &str = "/etcdserverpb.KV/Range";

/// A minimal KV client on one channel.
#[derive(Clone)]
pub struct KvClient {
    grpc: Grpc<Channel>,
}

impl KvClient {
    /// A client on `channel`.
    pub fn new(channel: Channel) -> KvClient {
        KvClient {
            grpc: Grpc::new(channel),
        }
    }

    /// A lazily connecting channel to `host:port` (plain HTTP/2).
    pub fn channel(addr: &str, timeout: Duration) -> Result<Channel, String> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad etcd endpoint {addr}: {e}"))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        Ok(endpoint.connect_lazy())
    }

    /// `Put key value`.
    pub async fn put(&mut self, key: Bytes, value: Bytes) -> Result<PutResponse, String> {
        self.grpc
            .ready()
            .await
            .map_err(|e| format!("etcd channel: {e}"))?;
        let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
        let r = self
            .grpc
            .unary(
                tonic::Request::new(PutRequest { key, value }),
                PathAndQuery::from_static(PUT),
                codec,
            )
            .await
            .map_err(|s| format!("etcd put: {:?}: {}", s.code(), s.message()))?;
        Ok(r.into_inner())
    }

    /// Linearizable `Range key`.
    pub async fn get(&mut self, key: Bytes) -> Result<RangeResponse, String> {
        self.grpc
            .ready()
            .await
            .map_err(|e| format!("etcd channel: {e}"))?;
        let codec = tonic_prost::ProstCodec::<RangeRequest, RangeResponse>::default();
        let r = self
            .grpc
            .unary(
                tonic::Request::new(RangeRequest {
                    key,
                    serializable: false,
                }),
                PathAndQuery::from_static(RANGE),
                codec,
            )
            .await
            .map_err(|s| format!("etcd range: {:?}: {}", s.code(), s.message()))?;
        Ok(r.into_inner())
    }
}

/// One connection of the run: `pipeline` concurrent slots on one channel.
pub(crate) async fn connection(shared: Arc<Shared>, addr: String, index: usize) -> Recorder {
    let rec = Arc::new(Mutex::new(Recorder::new()));
    let channel = match KvClient::channel(&addr, shared.timeout) {
        Ok(c) => c,
        Err(e) => {
            shared.connect_error();
            let mut r = Recorder::new();
            r.first_error = Some(e);
            return r;
        }
    };
    let mut slots = Vec::new();
    for slot in 0..shared.pipeline {
        let shared = shared.clone();
        let rec = rec.clone();
        let client = KvClient::new(channel.clone());
        let stream = (index * shared.pipeline + slot) as u64;
        slots.push(tokio::spawn(slot_loop(shared, client, rec, stream)));
    }
    for s in slots {
        let _ = s.await;
    }
    let r = rec.lock().map(|r| r.clone()).unwrap_or_default();
    r
}

async fn slot_loop(
    shared: Arc<Shared>,
    mut client: KvClient,
    rec: Arc<Mutex<Recorder>>,
    stream: u64,
) {
    let mut src = Source::new(shared.clone(), stream);
    while let Some(op) = src.next(Instant::now()) {
        if op.intended > Instant::now() {
            tokio::time::sleep_until(op.intended.into()).await;
        }
        let key = Bytes::from(shared.chooser.key(op.key));
        let result = match op.kind {
            OpKind::Write => {
                tokio::time::timeout(shared.timeout, client.put(key, shared.value.clone()))
                    .await
                    .map(|r| r.map(drop))
            }
            OpKind::Read => tokio::time::timeout(shared.timeout, client.get(key))
                .await
                .map(|r| r.map(drop)),
        };
        let result = result.unwrap_or_else(|_| Err("etcd request timed out".into()));
        let done = Instant::now();
        if let Ok(mut r) = rec.lock() {
            shared.record(&mut r, op.kind, op.intended, done, result);
        }
    }
}
