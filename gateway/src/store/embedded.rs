//! [`EmbeddedStore`]: everything in one redb file under the data directory.
//!
//! Reads run inline (redb reads are short and never wait for a writer); writes
//! go to the writer thread of [`GroupCommit`], which makes the writes queued
//! together durable with one fsync. An entry and its audit record are written
//! in the same transaction, so they persist together.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::group_commit::GroupCommit;
use super::{
    Actor, ApiKeyRecord, AuditRecord, KvApplied, KvEntry, KvListing, KvMetadata, KvOp, KvOutcome, KvPage, KvWrite,
    Millis, Store, StoreError, UserConflict, UserRecord,
};

/// (tenant, key) → encoded metadata and value.
const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
/// (expires_at, tenant, key) → (), the order in which entries expire.
const KV_EXPIRY: TableDefinition<(i64, &str, &str), ()> = TableDefinition::new("kv_expiry");
/// username → user JSON.
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// email → username.
const USER_EMAILS: TableDefinition<&str, &str> = TableDefinition::new("user_emails");
/// tenant → username.
const USER_TENANTS: TableDefinition<&str, &str> = TableDefinition::new("user_tenants");
/// SHA-256 of a key → API key JSON.
const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// (tenant, key id) → SHA-256 of the key.
const API_KEYS_BY_TENANT: TableDefinition<(&str, &str), &str> = TableDefinition::new("api_keys_by_tenant");
/// (tenant, seq) → audit JSON.
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
/// tenant → last audit seq.
const AUDIT_SEQ: TableDefinition<&str, u64> = TableDefinition::new("audit_seq");

/// Most expired entries removed by one sweep (the next sweep takes the rest).
const REAP_BATCH: usize = 10_000;

/// The redb-backed store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: GroupCommit,
}

/// A redb failure, as a store error.
pub(super) fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// `[meta length: u32 LE][meta JSON][value JSON]`: the value stays as sent, unparsed.
fn encode_entry(metadata: &KvMetadata, value: &str) -> Vec<u8> {
    let meta = serde_json::to_vec(metadata).expect("metadata serialises");
    let mut bytes = Vec::with_capacity(4 + meta.len() + value.len());
    bytes.extend_from_slice(&u32::try_from(meta.len()).expect("metadata under 4 GiB").to_le_bytes());
    bytes.extend_from_slice(&meta);
    bytes.extend_from_slice(value.as_bytes());
    bytes
}

fn decode_metadata(bytes: &[u8]) -> Result<(KvMetadata, &[u8]), StoreError> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("short KV record"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt("truncated KV record"));
    }
    let (meta, value) = rest.split_at(len);
    Ok((serde_json::from_slice(meta).map_err(corrupt)?, value))
}

fn decode_entry(key: &str, bytes: &[u8]) -> Result<KvEntry, StoreError> {
    let (metadata, value) = decode_metadata(bytes)?;
    let value = String::from_utf8(value.to_vec()).map_err(corrupt)?;
    Ok(KvEntry {
        key: key.to_owned(),
        value,
        metadata,
    })
}

impl EmbeddedStore {
    /// Opens (or creates) `gateway.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("gateway.redb");
        let db = Database::create(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(KV).map_err(backend)?;
            txn.open_table(KV_EXPIRY).map_err(backend)?;
            txn.open_table(USERS).map_err(backend)?;
            txn.open_table(USER_EMAILS).map_err(backend)?;
            txn.open_table(USER_TENANTS).map_err(backend)?;
            txn.open_table(API_KEYS).map_err(backend)?;
            txn.open_table(API_KEYS_BY_TENANT).map_err(backend)?;
            txn.open_table(AUDIT).map_err(backend)?;
            txn.open_table(AUDIT_SEQ).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let writer = GroupCommit::start(Arc::clone(&db))?;
        Ok(Self { db, writer })
    }

    /// Runs a write transaction and commits it when `work` returns `Ok((_, true))`;
    /// answers once the commit is durable (see [`GroupCommit`]).
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError> + Send + 'static,
    {
        self.writer.write(work).await
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(table).map_err(backend)?;
        match table.get(key).map_err(backend)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(bytes.value()).map_err(corrupt)?)),
            None => Ok(None),
        }
    }
}

/// Applies one operation inside `txn`; returns its outcome (writing only on success).
fn apply_op(txn: &WriteTransaction, actor: &Actor, op: &KvOp, now: Millis) -> Result<KvOutcome, StoreError> {
    let tenant = actor.tenant.as_str();
    let mut kv = txn.open_table(KV).map_err(backend)?;
    let mut expiry = txn.open_table(KV_EXPIRY).map_err(backend)?;
    let stored = match kv.get((tenant, op.key())).map_err(backend)? {
        Some(bytes) => Some(decode_metadata(bytes.value())?.0),
        None => None,
    };
    let live = stored.as_ref().filter(|meta| !meta.is_expired(now));
    let outcome = match (op, live) {
        (KvOp::Create(_), Some(_)) => KvOutcome::Exists,
        (KvOp::Replace(_) | KvOp::Delete { .. }, None) => KvOutcome::NotFound,
        (KvOp::Delete { .. }, Some(meta)) => KvOutcome::Deleted { version: meta.version },
        (KvOp::Create(write) | KvOp::Upsert(write), None) => KvOutcome::Created(write.metadata(1, now, now, None)),
        (KvOp::Replace(write) | KvOp::Upsert(write), Some(meta)) => {
            KvOutcome::Updated(write.metadata(meta.version + 1, meta.created_at, now, Some(meta)))
        }
    };
    if !outcome.is_success() {
        return Ok(outcome);
    }
    if let Some(at) = stored.as_ref().and_then(|meta| meta.expires_at) {
        expiry.remove((at, tenant, op.key())).map_err(backend)?;
    }
    match (op, &outcome) {
        (
            KvOp::Create(write) | KvOp::Replace(write) | KvOp::Upsert(write),
            KvOutcome::Created(metadata) | KvOutcome::Updated(metadata),
        ) => put(&mut kv, &mut expiry, tenant, write, metadata)?,
        _ => {
            kv.remove((tenant, op.key())).map_err(backend)?;
        }
    }
    append_audit(txn, actor, op.key(), &outcome, now)?;
    Ok(outcome)
}

fn put(
    kv: &mut redb::Table<(&str, &str), &[u8]>,
    expiry: &mut redb::Table<(i64, &str, &str), ()>,
    tenant: &str,
    write: &KvWrite,
    metadata: &KvMetadata,
) -> Result<(), StoreError> {
    if let Some(at) = metadata.expires_at {
        expiry.insert((at, tenant, write.key.as_str()), ()).map_err(backend)?;
    }
    kv.insert(
        (tenant, write.key.as_str()),
        encode_entry(metadata, &write.value).as_slice(),
    )
    .map_err(backend)?;
    Ok(())
}

fn append_audit(
    txn: &WriteTransaction,
    actor: &Actor,
    key: &str,
    outcome: &KvOutcome,
    now: Millis,
) -> Result<(), StoreError> {
    let mut seqs = txn.open_table(AUDIT_SEQ).map_err(backend)?;
    let seq = seqs
        .get(actor.tenant.as_str())
        .map_err(backend)?
        .map_or(0, |s| s.value())
        + 1;
    seqs.insert(actor.tenant.as_str(), seq).map_err(backend)?;
    let record = AuditRecord {
        seq,
        tenant_id: actor.tenant.clone(),
        user: actor.user.clone(),
        op: outcome.audit_op().unwrap_or("unknown").to_owned(),
        key: key.to_owned(),
        version: outcome.version(),
        at: now,
    };
    let json = serde_json::to_vec(&record).expect("audit records serialise");
    txn.open_table(AUDIT)
        .map_err(backend)?
        .insert((actor.tenant.as_str(), seq), json.as_slice())
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.begin_read().map(drop).map_err(backend)
    }

    async fn create_user(&self, user: &UserRecord) -> Result<Result<(), UserConflict>, StoreError> {
        let user = user.clone();
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            let mut emails = txn.open_table(USER_EMAILS).map_err(backend)?;
            if users.get(user.username.as_str()).map_err(backend)?.is_some() {
                return Ok((Err(UserConflict::Username), false));
            }
            if emails.get(user.email.as_str()).map_err(backend)?.is_some() {
                return Ok((Err(UserConflict::Email), false));
            }
            let json = serde_json::to_vec(&user).expect("users serialise");
            users.insert(user.username.as_str(), json.as_slice()).map_err(backend)?;
            emails
                .insert(user.email.as_str(), user.username.as_str())
                .map_err(backend)?;
            txn.open_table(USER_TENANTS)
                .map_err(backend)?
                .insert(user.tenant_id.as_str(), user.username.as_str())
                .map_err(backend)?;
            Ok((Ok(()), true))
        })
        .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read_json(USERS, username)
    }

    async fn reset_user(&self, username: &str, password_hash: &str, plan: &str) -> Result<bool, StoreError> {
        let (username, password_hash, plan) = (username.to_owned(), password_hash.to_owned(), plan.to_owned());
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            let found = users
                .get(username.as_str())
                .map_err(backend)?
                .map(|json| json.value().to_vec());
            let Some(json) = found else {
                return Ok((false, false));
            };
            let mut user: UserRecord = serde_json::from_slice(&json).map_err(corrupt)?;
            user.password_hash = password_hash;
            user.plan = plan;
            let json = serde_json::to_vec(&user).expect("users serialise");
            users.insert(username.as_str(), json.as_slice()).map_err(backend)?;
            Ok((true, true))
        })
        .await
    }

    async fn user_by_tenant(&self, tenant: &str) -> Result<Option<UserRecord>, StoreError> {
        let username = {
            let txn = self.db.begin_read().map_err(backend)?;
            let table = txn.open_table(USER_TENANTS).map_err(backend)?;
            let found = table.get(tenant).map_err(backend)?;
            match found {
                Some(name) => name.value().to_owned(),
                None => return Ok(None),
            }
        };
        self.read_json(USERS, &username)
    }

    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |txn| {
            let json = serde_json::to_vec(&record).expect("API keys serialise");
            txn.open_table(API_KEYS)
                .map_err(backend)?
                .insert(record.key_hash.as_str(), json.as_slice())
                .map_err(backend)?;
            txn.open_table(API_KEYS_BY_TENANT)
                .map_err(backend)?
                .insert(
                    (record.tenant_id.as_str(), record.id.as_str()),
                    record.key_hash.as_str(),
                )
                .map_err(backend)?;
            Ok(((), true))
        })
        .await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.read_json(API_KEYS, key_hash)
    }

    async fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let by_tenant = txn.open_table(API_KEYS_BY_TENANT).map_err(backend)?;
        let keys = txn.open_table(API_KEYS).map_err(backend)?;
        let mut records = Vec::new();
        for row in by_tenant.range((tenant, "")..).map_err(backend)? {
            let (id, hash) = row.map_err(backend)?;
            if id.value().0 != tenant {
                break;
            }
            if let Some(json) = keys.get(hash.value()).map_err(backend)? {
                records.push(serde_json::from_slice::<ApiKeyRecord>(json.value()).map_err(corrupt)?);
            }
        }
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn delete_api_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.write(move |txn| {
            let mut by_tenant = txn.open_table(API_KEYS_BY_TENANT).map_err(backend)?;
            let Some(hash) = by_tenant.remove((tenant.as_str(), id.as_str())).map_err(backend)? else {
                return Ok((false, false));
            };
            let hash = hash.value().to_owned();
            txn.open_table(API_KEYS)
                .map_err(backend)?
                .remove(hash.as_str())
                .map_err(backend)?;
            Ok((true, true))
        })
        .await
    }

    async fn kv_apply(&self, actor: &Actor, ops: Vec<KvOp>, now: Millis) -> Result<KvApplied, StoreError> {
        let actor = actor.clone();
        self.write(move |txn| {
            let mut outcomes = Vec::with_capacity(ops.len());
            for op in &ops {
                outcomes.push(apply_op(txn, &actor, op, now)?);
            }
            let committed = outcomes.iter().all(KvOutcome::is_success);
            Ok((KvApplied { committed, outcomes }, committed))
        })
        .await
    }

    async fn kv_get(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<KvEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        let Some(bytes) = table.get((tenant, key)).map_err(backend)? else {
            return Ok(None);
        };
        let entry = decode_entry(key, bytes.value())?;
        Ok((!entry.metadata.is_expired(now)).then_some(entry))
    }

    async fn kv_metadata(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<KvMetadata>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        let Some(bytes) = table.get((tenant, key)).map_err(backend)? else {
            return Ok(None);
        };
        let metadata = decode_metadata(bytes.value())?.0;
        Ok((!metadata.is_expired(now)).then_some(metadata))
    }

    async fn kv_list(
        &self,
        tenant: &str,
        tag: Option<(&str, &str)>,
        offset: u64,
        limit: u64,
        now: Millis,
    ) -> Result<KvPage, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        let mut items = Vec::new();
        let mut total = 0_u64;
        for row in table.range((tenant, "")..).map_err(backend)? {
            let (key, bytes) = row.map_err(backend)?;
            let (row_tenant, key) = key.value();
            if row_tenant != tenant {
                break;
            }
            let metadata = decode_metadata(bytes.value())?.0;
            let tagged = tag.is_none_or(|(k, v)| metadata.tags.get(k).is_some_and(|found| found == v));
            if metadata.is_expired(now) || !tagged {
                continue;
            }
            if total >= offset && total < offset.saturating_add(limit) {
                items.push(KvListing {
                    key: key.to_owned(),
                    metadata,
                });
            }
            total += 1;
        }
        Ok(KvPage { items, total })
    }

    async fn kv_count(&self, tenant: &str, now: Millis) -> Result<u64, StoreError> {
        Ok(self.kv_list(tenant, None, 0, 0, now).await?.total)
    }

    async fn reap_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.write(move |txn| {
            let mut expiry = txn.open_table(KV_EXPIRY).map_err(backend)?;
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let due: Vec<(i64, String, String)> = expiry
                .range((i64::MIN, "", "")..(now.saturating_add(1), "", ""))
                .map_err(backend)?
                .take(REAP_BATCH)
                .map(|row| {
                    row.map(|(key, _)| {
                        let (at, tenant, key) = key.value();
                        (at, tenant.to_owned(), key.to_owned())
                    })
                    .map_err(backend)
                })
                .collect::<Result<_, _>>()?;
            let mut reaped = 0;
            for (at, tenant, key) in &due {
                expiry.remove((*at, tenant.as_str(), key.as_str())).map_err(backend)?;
                let expired = match kv.get((tenant.as_str(), key.as_str())).map_err(backend)? {
                    Some(bytes) => decode_metadata(bytes.value())?.0.is_expired(now),
                    None => false,
                };
                if expired {
                    kv.remove((tenant.as_str(), key.as_str())).map_err(backend)?;
                    reaped += 1;
                }
            }
            Ok((reaped, !due.is_empty()))
        })
        .await
    }

    async fn audit_page(&self, tenant: &str, offset: u64, limit: u64) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let total = txn
            .open_table(AUDIT_SEQ)
            .map_err(backend)?
            .get(tenant)
            .map_err(backend)?
            .map_or(0, |s| s.value());
        let table = txn.open_table(AUDIT).map_err(backend)?;
        let first = offset.saturating_add(1);
        let mut records = Vec::new();
        if limit > 0 && first <= total {
            let last = offset.saturating_add(limit).min(total);
            for row in table.range((tenant, first)..=(tenant, last)).map_err(backend)? {
                let (_, json) = row.map_err(backend)?;
                records.push(serde_json::from_slice(json.value()).map_err(corrupt)?);
            }
        }
        Ok((records, total))
    }
}
