//! [`RedisStore`]: the same data in Redis, laid out as
//!
//! | key | holds |
//! |-----|-------|
//! | `kv:{tenant}:{key}` | the value (JSON text), with the entry's expiry |
//! | `kv:{tenant}:{key}:metadata` | hash: version, ttl, tags, created_at, updated_at, expires_at |
//! | `tenant_keys:{tenant}` | sorted set of the tenant's keys (score 0: key order) |
//! | `kv_expiry` | sorted set of `{tenant}:{key}` by expiry time, for the reaper |
//! | `audit:{tenant}` | list of audit records (JSON) |
//! | `user:{tenant}`, `username_index:{u}`, `email_index:{e}` | users |
//! | `api_key:{sha256}`, `api_keys:{tenant}` | API keys (hash id → sha256) |
//!
//! every key behind an optional prefix. Multi-key changes run as Lua scripts
//! (atomic); reads of value and metadata go in one `MULTI`/`EXEC` pipeline.
//! Scripts touch keys they compute, so this layout targets a single Redis, not a cluster.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};

use super::{
    Actor, ApiKeyRecord, AuditRecord, FieldChange, KvApplied, KvListing, KvMetadata, KvOp, KvOutcome, KvPage, Millis,
    Store, StoreError, UserConflict, UserRecord, ttl_expiry,
};
use crate::store::KvEntry;

/// Applies a list of KV operations all or nothing, with their audit records.
/// Per operation: mode, key, value, ttl (seconds, '' for none, 'keep'), tags
/// (JSON, or 'keep'), expires_at (for a ttl given), expiry member, key as JSON.
/// A kept ttl keeps the entry's expiry time. Each result is
/// `{status, version, created_at, ttl, tags, expires_at}`.
const APPLY_SCRIPT: &str = r#"
local now, n, audit_prefix, F = ARGV[1], tonumber(ARGV[2]), ARGV[3], 8
local state, results, ok = {}, {}, 1
for i = 0, n - 1 do
  local a = 4 + i * F
  local mode, key = ARGV[a], ARGV[a + 1]
  local s = state[key]
  if not s then
    local m = redis.call('HMGET', KEYS[5 + i * 2], 'version', 'created_at', 'ttl', 'tags', 'expires_at')
    if m[1] then s = {exists = true, version = tonumber(m[1]), created = m[2], ttl = m[3] or '',
      tags = m[4] or '{}', expires_at = m[5] or ''}
    else s = {exists = false, version = 0, created = now} end
    state[key] = s
  end
  local r
  if mode == 'delete' then
    if s.exists then r = {'deleted', s.version, s.created, '', '', ''}; s.exists = false
    else r = {'not_found', 0, '', '', '', ''} end
  elseif mode == 'create' and s.exists then r = {'exists', s.version, s.created, '', '', ''}
  elseif mode == 'replace' and not s.exists then r = {'not_found', 0, '', '', '', ''}
  else
    local status = 'updated'
    if s.exists then s.version = s.version + 1
    else
      status = 'created'
      s.exists, s.version, s.created, s.ttl, s.tags, s.expires_at = true, 1, now, '', '{}', ''
    end
    if ARGV[a + 3] ~= 'keep' then s.ttl, s.expires_at = ARGV[a + 3], ARGV[a + 5] end
    if ARGV[a + 4] ~= 'keep' then s.tags = ARGV[a + 4] end
    r = {status, s.version, s.created, s.ttl, s.tags, s.expires_at}
  end
  if r[1] == 'not_found' or r[1] == 'exists' then ok = 0 end
  results[i + 1] = r
end
if ok == 0 then return {0, results} end
for i = 0, n - 1 do
  local a = 4 + i * F
  local key, value, member, key_json = ARGV[a + 1], ARGV[a + 2], ARGV[a + 6], ARGV[a + 7]
  local vkey, mkey, r, op = KEYS[4 + i * 2], KEYS[5 + i * 2], results[i + 1], 'delete'
  if r[1] == 'deleted' then
    redis.call('DEL', vkey, mkey)
    redis.call('ZREM', KEYS[1], key)
    redis.call('ZREM', KEYS[2], member)
  else
    redis.call('DEL', mkey)
    redis.call('SET', vkey, value)
    redis.call('HSET', mkey, 'version', r[2], 'ttl', r[4], 'tags', r[5], 'created_at', r[3],
      'updated_at', now, 'expires_at', r[6])
    if r[6] ~= '' then
      local ttl_ms = math.max(tonumber(r[6]) - tonumber(now), 1)
      redis.call('PEXPIRE', vkey, ttl_ms)
      redis.call('PEXPIRE', mkey, ttl_ms)
      redis.call('ZADD', KEYS[2], r[6], member)
    else
      redis.call('ZREM', KEYS[2], member)
    end
    redis.call('ZADD', KEYS[1], 0, key)
    if r[1] == 'created' then op = 'create' else op = 'update' end
  end
  redis.call('RPUSH', KEYS[3], audit_prefix .. ',"op":"' .. op .. '","key":' .. key_json ..
    ',"version":' .. r[2] .. ',"at":' .. now .. '}')
end
return {1, results}
"#;

/// Removes entries due at ARGV[1] from the expiry index, their tenant's key set and the data.
const REAP_SCRIPT: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local sep = string.find(member, ':', 1, true)
  local tenant, key = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  local data = ARGV[3] .. 'kv:' .. tenant .. ':' .. key
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', ARGV[3] .. 'tenant_keys:' .. tenant, key)
  redis.call('DEL', data, data .. ':metadata')
end
return #due
"#;

/// Registers a user unless the name or e-mail is taken.
const CREATE_USER_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'username' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'email' end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
return 'ok'
"#;

/// Deletes the tenant's API key ARGV[1].
const DELETE_API_KEY_SCRIPT: &str = r#"
local hash = redis.call('HGET', KEYS[1], ARGV[1])
if not hash then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', ARGV[2] .. 'api_key:' .. hash)
return 1
"#;

/// Most expired entries removed by one sweep.
const REAP_BATCH: u64 = 10_000;

/// Keys whose tags are fetched per round trip when filtering by tag.
const TAG_SCAN_CHUNK: usize = 500;

/// The Redis-backed store.
#[derive(Clone)]
pub struct RedisStore {
    conn: MultiplexedConnection,
    prefix: String,
    apply: Script,
    reap: Script,
    create_user: Script,
    delete_api_key: Script,
}

fn redis_error(error: redis::RedisError) -> StoreError {
    if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() || error.is_timeout() {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Backend(error.to_string())
    }
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

fn parse_metadata(fields: &HashMap<String, String>) -> Result<Option<KvMetadata>, StoreError> {
    let Some(version) = fields.get("version") else {
        return Ok(None);
    };
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let number = |name: &str| -> Result<Option<i64>, StoreError> {
        match field(name) {
            "" => Ok(None),
            text => text
                .parse()
                .map(Some)
                .map_err(|e| corrupt(format!("metadata {name}: {e}"))),
        }
    };
    Ok(Some(KvMetadata {
        version: version.parse().map_err(corrupt)?,
        ttl: number("ttl")?.map(|t| t.max(0).unsigned_abs()),
        tags: match field("tags") {
            "" => Default::default(),
            json => serde_json::from_str(json).map_err(corrupt)?,
        },
        created_at: number("created_at")?.unwrap_or_default(),
        updated_at: number("updated_at")?.unwrap_or_default(),
        expires_at: number("expires_at")?,
    }))
}

impl RedisStore {
    /// Connects to `url`; every key is prefixed with `key_prefix`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Unavailable(format!("{url}: {e}")))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to {url}: {e}")))?;
        Ok(Self {
            conn,
            prefix: key_prefix.to_owned(),
            apply: Script::new(APPLY_SCRIPT),
            reap: Script::new(REAP_SCRIPT),
            create_user: Script::new(CREATE_USER_SCRIPT),
            delete_api_key: Script::new(DELETE_API_KEY_SCRIPT),
        })
    }

    /// A handle on the shared connection (it multiplexes and pipelines concurrent callers).
    pub fn connection(&self) -> MultiplexedConnection {
        self.conn.clone()
    }

    /// The prefix in front of every key.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn value_key(&self, tenant: &str, key: &str) -> String {
        format!("{}kv:{tenant}:{key}", self.prefix)
    }

    fn metadata_key(&self, tenant: &str, key: &str) -> String {
        format!("{}kv:{tenant}:{key}:metadata", self.prefix)
    }

    fn tenant_keys(&self, tenant: &str) -> String {
        format!("{}tenant_keys:{tenant}", self.prefix)
    }

    fn expiry_index(&self) -> String {
        format!("{}kv_expiry", self.prefix)
    }

    fn audit_key(&self, tenant: &str) -> String {
        format!("{}audit:{tenant}", self.prefix)
    }

    async fn metadata_of(&self, tenant: &str, keys: &[String]) -> Result<Vec<Option<KvMetadata>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hgetall(self.metadata_key(tenant, key));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn.clone()).await.map_err(redis_error)?;
        rows.iter().map(parse_metadata).collect()
    }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(redis_error)
    }

    async fn create_user(&self, user: &UserRecord) -> Result<Result<(), UserConflict>, StoreError> {
        let json = serde_json::to_string(user).expect("users serialise");
        let answer: String = self
            .create_user
            .key(format!("{}username_index:{}", self.prefix, user.username))
            .key(format!("{}email_index:{}", self.prefix, user.email))
            .key(format!("{}user:{}", self.prefix, user.tenant_id))
            .arg(&user.tenant_id)
            .arg(json)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        Ok(match answer.as_str() {
            "username" => Err(UserConflict::Username),
            "email" => Err(UserConflict::Email),
            _ => Ok(()),
        })
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let tenant: Option<String> = self
            .conn
            .clone()
            .get(format!("{}username_index:{username}", self.prefix))
            .await
            .map_err(redis_error)?;
        match tenant {
            Some(tenant) => self.user_by_tenant(&tenant).await,
            None => Ok(None),
        }
    }

    async fn reset_user(&self, username: &str, password_hash: &str, plan: &str) -> Result<bool, StoreError> {
        // Read-modify-write: only the gateway's start-up (the demo account) resets users.
        let Some(mut user) = self.user_by_name(username).await? else {
            return Ok(false);
        };
        user.password_hash = password_hash.to_owned();
        user.plan = plan.to_owned();
        let json = serde_json::to_string(&user).expect("users serialise");
        let () = self
            .conn
            .clone()
            .set(format!("{}user:{}", self.prefix, user.tenant_id), json)
            .await
            .map_err(redis_error)?;
        Ok(true)
    }

    async fn user_by_tenant(&self, tenant: &str) -> Result<Option<UserRecord>, StoreError> {
        let json: Option<String> = self
            .conn
            .clone()
            .get(format!("{}user:{tenant}", self.prefix))
            .await
            .map_err(redis_error)?;
        json.map(|json| serde_json::from_str(&json).map_err(corrupt))
            .transpose()
    }

    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).expect("API keys serialise");
        redis::pipe()
            .atomic()
            .set(format!("{}api_key:{}", self.prefix, record.key_hash), json)
            .hset(
                format!("{}api_keys:{}", self.prefix, record.tenant_id),
                &record.id,
                &record.key_hash,
            )
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(redis_error)
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let json: Option<String> = self
            .conn
            .clone()
            .get(format!("{}api_key:{key_hash}", self.prefix))
            .await
            .map_err(redis_error)?;
        json.map(|json| serde_json::from_str(&json).map_err(corrupt))
            .transpose()
    }

    async fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let hashes: Vec<String> = conn
            .hvals(format!("{}api_keys:{tenant}", self.prefix))
            .await
            .map_err(redis_error)?;
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = hashes.iter().map(|h| format!("{}api_key:{h}", self.prefix)).collect();
        let rows: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut records = rows
            .into_iter()
            .flatten()
            .map(|json| serde_json::from_str::<ApiKeyRecord>(&json).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        records.retain(|record| record.tenant_id == tenant);
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn delete_api_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .delete_api_key
            .key(format!("{}api_keys:{tenant}", self.prefix))
            .arg(id)
            .arg(&self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        Ok(deleted == 1)
    }

    async fn kv_apply(&self, actor: &Actor, ops: Vec<KvOp>, now: Millis) -> Result<KvApplied, StoreError> {
        let tenant = actor.tenant.as_str();
        let audit_prefix = format!(
            "{{\"tenant_id\":{},\"user\":{}",
            serde_json::Value::from(tenant),
            serde_json::Value::from(actor.user.as_str())
        );
        let mut invocation = self.apply.prepare_invoke();
        invocation
            .key(self.tenant_keys(tenant))
            .key(self.expiry_index())
            .key(self.audit_key(tenant))
            .arg(now)
            .arg(ops.len())
            .arg(audit_prefix);
        for op in &ops {
            let key = op.key();
            invocation
                .key(self.value_key(tenant, key))
                .key(self.metadata_key(tenant, key));
            let (mode, write) = match op {
                KvOp::Create(write) => ("create", Some(write)),
                KvOp::Replace(write) => ("replace", Some(write)),
                KvOp::Upsert(write) => ("upsert", Some(write)),
                KvOp::Delete { .. } => ("delete", None),
            };
            let (ttl, expires_at) = match write.map(|w| &w.ttl) {
                Some(FieldChange::Keep) => ("keep".to_owned(), String::new()),
                Some(FieldChange::Set(ttl)) => (
                    ttl.map(|t| t.to_string()).unwrap_or_default(),
                    ttl_expiry(*ttl, now).map(|t| t.to_string()).unwrap_or_default(),
                ),
                None => (String::new(), String::new()),
            };
            let tags = match write.map(|w| &w.tags) {
                Some(FieldChange::Keep) => "keep".to_owned(),
                Some(FieldChange::Set(tags)) => serde_json::to_string(tags).expect("tags serialise"),
                None => "{}".to_owned(),
            };
            invocation
                .arg(mode)
                .arg(key)
                .arg(write.map_or("", |w| w.value.as_str()))
                .arg(ttl)
                .arg(tags)
                .arg(expires_at)
                .arg(format!("{tenant}:{key}"))
                .arg(serde_json::Value::from(key).to_string());
        }
        type Row = (String, u64, String, String, String, String);
        let (committed, rows): (i64, Vec<Row>) = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        let outcomes = rows
            .into_iter()
            .map(|(status, version, created_at, ttl, tags, expires_at)| {
                let written = || {
                    let fields = HashMap::from([
                        ("version".to_owned(), version.to_string()),
                        ("created_at".to_owned(), created_at.clone()),
                        ("updated_at".to_owned(), now.to_string()),
                        ("ttl".to_owned(), ttl.clone()),
                        ("tags".to_owned(), tags.clone()),
                        ("expires_at".to_owned(), expires_at.clone()),
                    ]);
                    parse_metadata(&fields)?.ok_or_else(|| corrupt("the apply script returned no version"))
                };
                match status.as_str() {
                    "created" => Ok(KvOutcome::Created(written()?)),
                    "updated" => Ok(KvOutcome::Updated(written()?)),
                    "deleted" => Ok(KvOutcome::Deleted { version }),
                    "exists" => Ok(KvOutcome::Exists),
                    "not_found" => Ok(KvOutcome::NotFound),
                    other => Err(corrupt(format!("unexpected outcome {other:?} from the apply script"))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KvApplied {
            committed: committed == 1,
            outcomes,
        })
    }

    async fn kv_get(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<KvEntry>, StoreError> {
        let (value, fields): (Option<String>, HashMap<String, String>) = redis::pipe()
            .atomic()
            .get(self.value_key(tenant, key))
            .hgetall(self.metadata_key(tenant, key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        let (Some(value), Some(metadata)) = (value, parse_metadata(&fields)?) else {
            return Ok(None);
        };
        Ok((!metadata.is_expired(now)).then(|| KvEntry {
            key: key.to_owned(),
            value,
            metadata,
        }))
    }

    async fn kv_metadata(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<KvMetadata>, StoreError> {
        let fields: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.metadata_key(tenant, key))
            .await
            .map_err(redis_error)?;
        Ok(parse_metadata(&fields)?.filter(|metadata| !metadata.is_expired(now)))
    }

    async fn kv_list(
        &self,
        tenant: &str,
        tag: Option<(&str, &str)>,
        offset: u64,
        limit: u64,
        now: Millis,
    ) -> Result<KvPage, StoreError> {
        self.reap_expired(now).await?;
        let mut conn = self.conn.clone();
        let index = self.tenant_keys(tenant);
        let Some((tag_key, tag_value)) = tag else {
            let total: u64 = conn.zcard(&index).await.map_err(redis_error)?;
            if limit == 0 || offset >= total {
                return Ok(KvPage {
                    items: Vec::new(),
                    total,
                });
            }
            let stop = isize::try_from(offset.saturating_add(limit) - 1).unwrap_or(isize::MAX);
            let keys: Vec<String> = conn
                .zrange(&index, isize::try_from(offset).unwrap_or(isize::MAX), stop)
                .await
                .map_err(redis_error)?;
            let metadata = self.metadata_of(tenant, &keys).await?;
            let items = keys
                .into_iter()
                .zip(metadata)
                .filter_map(|(key, metadata)| metadata.map(|metadata| KvListing { key, metadata }))
                .collect();
            return Ok(KvPage { items, total });
        };
        let keys: Vec<String> = conn.zrange(&index, 0, -1).await.map_err(redis_error)?;
        let mut matching = Vec::new();
        for chunk in keys.chunks(TAG_SCAN_CHUNK) {
            for (key, metadata) in chunk.iter().zip(self.metadata_of(tenant, chunk).await?) {
                if let Some(metadata) = metadata
                    && !metadata.is_expired(now)
                    && metadata.tags.get(tag_key).is_some_and(|v| v == tag_value)
                {
                    matching.push(KvListing {
                        key: key.clone(),
                        metadata,
                    });
                }
            }
        }
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        Ok(KvPage { items, total })
    }

    async fn kv_count(&self, tenant: &str, now: Millis) -> Result<u64, StoreError> {
        self.reap_expired(now).await?;
        self.conn
            .clone()
            .zcard(self.tenant_keys(tenant))
            .await
            .map_err(redis_error)
    }

    async fn reap_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.reap
            .key(self.expiry_index())
            .arg(now)
            .arg(REAP_BATCH)
            .arg(&self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)
    }

    async fn audit_page(&self, tenant: &str, offset: u64, limit: u64) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let key = self.audit_key(tenant);
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = isize::try_from(offset.saturating_add(limit)).unwrap_or(isize::MAX) - 1;
        let (total, rows): (u64, Vec<String>) = if limit == 0 {
            (self.conn.clone().llen(&key).await.map_err(redis_error)?, Vec::new())
        } else {
            redis::pipe()
                .llen(&key)
                .lrange(&key, start, stop)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(redis_error)?
        };
        let records = rows
            .iter()
            .enumerate()
            .map(|(i, json)| {
                let mut record: AuditRecord = serde_json::from_str(json).map_err(corrupt)?;
                record.seq = offset + i as u64 + 1;
                Ok(record)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((records, total))
    }
}
