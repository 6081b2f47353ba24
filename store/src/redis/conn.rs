//! The connection: one Redis or a Redis Cluster, key prefixes as hash
//! tags, and the checks made on connecting (no eviction, no cluster node
//! behind a plain URL).

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use spotenc_proto::{Error, Result};

/// One Redis, or a Redis Cluster (`redis+cluster://`): every key carries
/// the prefix's hash tag, so all of them hash to one slot and each script
/// and pipeline runs on the node that owns it.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The seed nodes of a `redis+cluster://host:port[,host:port...]` URL, as
/// plain `redis://` URLs; `None` for any other URL.
pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix("redis+cluster://")?;
    let hosts = rest.trim_end_matches('/');
    Some(
        hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{h}/"))
            .collect(),
    )
}

/// The key prefix as a hash tag: `spotenc` becomes `{spotenc}`, so every
/// key (`{spotenc}:job:…`, `{spotenc}:task:…`) hashes to one cluster slot.
/// A prefix that already holds a tag is kept as it is.
pub fn hash_tagged(prefix: &str) -> String {
    match prefix.find('{') {
        Some(open) if prefix[open + 1..].find('}').is_some_and(|close| close > 0) => {
            prefix.to_string()
        }
        _ => format!("{{{prefix}}}"),
    }
}

/// The `maxmemory_policy` line of `INFO memory` (INFO answers on managed
/// services that disable `CONFIG GET`).
pub fn eviction_policy(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|l| l.strip_prefix("maxmemory_policy:"))
        .map(str::trim)
}

/// `INFO <section>` of the Redis at `url`.
async fn info(
    conn: &mut impl redis::aio::ConnectionLike,
    url: &str,
    section: &str,
) -> Result<String> {
    redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .map_err(|e| Error::Unavailable(format!("redis at {url}: INFO {section}: {e}")))
}

/// Refuses a Redis that may evict keys: an evicted task, lease or job record
/// would silently lose work. Only `noeviction` is safe for spotenc's state.
pub(super) async fn check_eviction(
    conn: &mut impl redis::aio::ConnectionLike,
    url: &str,
) -> Result<()> {
    let info = info(conn, url, "memory").await?;
    match eviction_policy(&info) {
        Some("noeviction") => Ok(()),
        Some(policy) => Err(Error::invalid(format!(
            "redis at {url} has maxmemory-policy {policy}: it may evict spotenc's job and \
             lease records and lose work; set `maxmemory-policy noeviction` (and size maxmemory \
             for the backlog)"
        ))),
        None => {
            tracing::warn!(%url, "redis INFO memory reports no maxmemory_policy; cannot check eviction");
            Ok(())
        }
    }
}

/// Refuses a plain `redis://` URL to a node of a Redis Cluster: it would
/// serve only the slots that node owns, and fail the rest with MOVED.
pub(super) async fn check_not_cluster(
    conn: &mut impl redis::aio::ConnectionLike,
    url: &str,
) -> Result<()> {
    let info = info(conn, url, "cluster").await?;
    if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
        let hostport = url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or_default();
        return Err(Error::invalid(format!(
            "redis at {url} is a Redis Cluster node: use redis+cluster://{hostport}[,host:port...] \
             so spotenc follows the cluster's slots"
        )));
    }
    Ok(())
}
