//! Persistence behind one trait, [`Store`], with two backends: [`EmbeddedStore`]
//! (redb, the default) and [`RedisStore`]. Both keep users, API keys, KV entries
//! and the audit log, and both write a KV change and its audit record atomically.
//!
//! Times are Unix milliseconds, passed in by the caller so that expiry is decided
//! by one clock and tests can reason about it.

mod embedded;
mod group_commit;
mod redis;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedStore;
pub use redis::RedisStore;

/// Unix time in milliseconds.
pub type Millis = i64;

/// The current Unix time in milliseconds.
pub fn now_millis() -> Millis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Why a store operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached (Redis down, database file locked).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error or returned something unreadable.
    #[error("store failure: {0}")]
    Backend(String),
    /// A record in the store does not decode.
    #[error("corrupt record in the store: {0}")]
    Corrupt(String),
}

/// The metadata kept beside every value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMetadata {
    /// 1 on creation, incremented by every update.
    pub version: u64,
    /// The TTL in seconds given at the last write, if any.
    pub ttl: Option<u64>,
    /// Free-form labels, filterable with `tag_filter=k:v`.
    pub tags: BTreeMap<String, String>,
    /// When the key was created.
    pub created_at: Millis,
    /// When the key was last written.
    pub updated_at: Millis,
    /// When the key expires, if it has a TTL.
    pub expires_at: Option<Millis>,
}

impl KvMetadata {
    /// Whether the entry is gone at `now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A value (as JSON text) with its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The key, unique per tenant.
    pub key: String,
    /// The value as JSON text, exactly as it was written.
    pub value: String,
    /// Version, TTL, tags and times.
    pub metadata: KvMetadata,
}

/// A key with its metadata, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvListing {
    /// The key.
    pub key: String,
    /// Its metadata.
    pub metadata: KvMetadata,
}

/// What a write does to a field of the metadata that a request may leave out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldChange<T> {
    /// Keep what the entry has (nothing, for a new entry).
    Keep,
    /// Set the field to this.
    Set(T),
}

impl<T> Default for FieldChange<T> {
    /// A field a request leaves out is kept.
    fn default() -> Self {
        Self::Keep
    }
}

impl<T: Clone> FieldChange<T> {
    /// The field after the change: the new value, else the kept one, else `fresh`.
    fn resolve(&self, kept: Option<&T>, fresh: T) -> T {
        match (self, kept) {
            (Self::Set(value), _) => value.clone(),
            (Self::Keep, Some(kept)) => kept.clone(),
            (Self::Keep, None) => fresh,
        }
    }
}

/// A value to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvWrite {
    /// The key.
    pub key: String,
    /// The value as JSON text.
    pub value: String,
    /// TTL in seconds (`Set(None)`: no expiry); `Keep` keeps the entry's expiry time.
    pub ttl: FieldChange<Option<u64>>,
    /// Tags to attach (`Set` replaces all of them); `Keep` keeps the entry's.
    pub tags: FieldChange<BTreeMap<String, String>>,
}

impl KvWrite {
    /// The metadata of this write made at `now` over `previous`, the live entry
    /// it overwrites if any, for the given version and creation time. A kept
    /// TTL keeps the expiry time too: rewriting a value does not extend its life.
    pub fn metadata(&self, version: u64, created_at: Millis, now: Millis, previous: Option<&KvMetadata>) -> KvMetadata {
        let (ttl, expires_at) = match (&self.ttl, previous) {
            (FieldChange::Set(ttl), _) => (*ttl, ttl_expiry(*ttl, now)),
            (FieldChange::Keep, Some(previous)) => (previous.ttl, previous.expires_at),
            (FieldChange::Keep, None) => (None, None),
        };
        KvMetadata {
            version,
            ttl,
            tags: self.tags.resolve(previous.map(|p| &p.tags), BTreeMap::new()),
            created_at,
            updated_at: now,
            expires_at,
        }
    }
}

/// When an entry written at `now` with `ttl` seconds expires.
pub fn ttl_expiry(ttl: Option<u64>, now: Millis) -> Option<Millis> {
    ttl.map(|secs| now.saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)))
}

/// One operation of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Write a new key; fails if it exists.
    Create(KvWrite),
    /// Overwrite an existing key (version + 1), keeping the fields the write
    /// leaves as [`FieldChange::Keep`]; fails if it does not exist.
    Replace(KvWrite),
    /// Create or overwrite.
    Upsert(KvWrite),
    /// Remove an existing key; fails if it does not exist.
    Delete {
        /// The key.
        key: String,
    },
}

impl KvOp {
    /// The key the operation addresses.
    pub fn key(&self) -> &str {
        match self {
            Self::Create(write) | Self::Replace(write) | Self::Upsert(write) => &write.key,
            Self::Delete { key } => key,
        }
    }
}

/// What one operation did, or why it could not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOutcome {
    /// A new key, version 1, with the metadata written.
    Created(KvMetadata),
    /// An existing key overwritten, with the metadata written (fields kept included).
    Updated(KvMetadata),
    /// A key removed; its last version.
    Deleted {
        /// The version it had.
        version: u64,
    },
    /// Refused: the key exists (create).
    Exists,
    /// Refused: the key does not exist (replace, delete).
    NotFound,
}

impl KvOutcome {
    /// Whether the operation can be applied.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Created(_) | Self::Updated(_) | Self::Deleted { .. })
    }

    /// The audit verb, for successful outcomes.
    pub fn audit_op(&self) -> Option<&'static str> {
        match self {
            Self::Created(_) => Some("create"),
            Self::Updated(_) => Some("update"),
            Self::Deleted { .. } => Some("delete"),
            Self::Exists | Self::NotFound => None,
        }
    }

    /// The version after the operation (the removed version for deletes).
    pub fn version(&self) -> u64 {
        match self {
            Self::Created(metadata) | Self::Updated(metadata) => metadata.version,
            Self::Deleted { version } => *version,
            Self::Exists | Self::NotFound => 0,
        }
    }
}

/// The result of [`Store::kv_apply`]: every outcome, and whether they were applied
/// (all of them) or not (none of them, because at least one failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvApplied {
    /// True when every operation succeeded and all were written.
    pub committed: bool,
    /// One outcome per operation, in order.
    pub outcomes: Vec<KvOutcome>,
}

/// A page of keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvPage {
    /// The keys of this page in key order.
    pub items: Vec<KvListing>,
    /// How many keys match in all.
    pub total: u64,
}

/// Who did something, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The tenant.
    pub tenant: String,
    /// The user name, API key or token that acted.
    pub user: String,
}

/// One audited KV change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the tenant's log, from 1.
    #[serde(default)]
    pub seq: u64,
    /// The tenant.
    pub tenant_id: String,
    /// Who made the change.
    pub user: String,
    /// `create`, `update` or `delete`.
    pub op: String,
    /// The key changed.
    pub key: String,
    /// The version written (or removed).
    pub version: u64,
    /// When.
    pub at: Millis,
}

/// A registered user; each user owns one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The tenant the user owns: a UUID, or the tenant named by `[gateway.demo_account]`.
    pub tenant_id: String,
    /// Unique user name.
    pub username: String,
    /// Unique e-mail address (lower-cased).
    pub email: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Scopes granted at login.
    pub scopes: Vec<String>,
    /// Rate-limit plan.
    pub plan: String,
    /// Registration time.
    pub created_at: Millis,
}

/// Which unique field a registration collided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserConflict {
    /// The user name is taken.
    Username,
    /// The e-mail address is taken.
    Email,
}

/// An API key as stored: never the key itself, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Identifier used to delete the key.
    pub id: String,
    /// The owning tenant.
    pub tenant_id: String,
    /// A label chosen by the owner.
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub key_hash: String,
    /// Scopes the key grants.
    pub scopes: Vec<String>,
    /// Rate-limit plan of the tenant when the key was made.
    pub plan: String,
    /// Creation time.
    pub created_at: Millis,
}

/// Everything the gateway persists. Methods take the tenant explicitly: a store
/// never reads or writes outside the tenant it is given.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and metrics (`embedded`, `redis`).
    fn backend(&self) -> &'static str;

    /// Checks the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Registers a user, unless the user name or e-mail is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<Result<(), UserConflict>, StoreError>;

    /// The user with this name.
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The user owning this tenant.
    async fn user_by_tenant(&self, tenant: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Replaces the password hash and the rate-limit plan of user `username`
    /// (the demo account's reset at start-up); false if there is no such user.
    async fn reset_user(&self, username: &str, password_hash: &str, plan: &str) -> Result<bool, StoreError>;

    /// Stores an API key record.
    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError>;

    /// The API key whose SHA-256 is `key_hash`.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// The tenant's API keys, oldest first.
    async fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Removes the tenant's key `id`; false if the tenant has no such key.
    async fn delete_api_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// Applies `ops` in order, all or nothing, appending an audit record per
    /// operation when they are applied.
    async fn kv_apply(&self, actor: &Actor, ops: Vec<KvOp>, now: Millis) -> Result<KvApplied, StoreError>;

    /// The live entry at `key`.
    async fn kv_get(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<KvEntry>, StoreError>;

    /// The metadata of the live entry at `key`.
    async fn kv_metadata(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<KvMetadata>, StoreError>;

    /// Live keys in key order, optionally only those tagged `tag.0 = tag.1`.
    async fn kv_list(
        &self,
        tenant: &str,
        tag: Option<(&str, &str)>,
        offset: u64,
        limit: u64,
        now: Millis,
    ) -> Result<KvPage, StoreError>;

    /// How many live keys the tenant has.
    async fn kv_count(&self, tenant: &str, now: Millis) -> Result<u64, StoreError>;

    /// Removes entries expired at `now`; returns how many.
    async fn reap_expired(&self, now: Millis) -> Result<u64, StoreError>;

    /// The tenant's audit records `offset..offset + limit` (oldest first) and their total.
    async fn audit_page(&self, tenant: &str, offset: u64, limit: u64) -> Result<(Vec<AuditRecord>, u64), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(ttl: FieldChange<Option<u64>>, tags: FieldChange<BTreeMap<String, String>>) -> KvWrite {
        KvWrite {
            key: "k".into(),
            value: "1".into(),
            ttl,
            tags,
        }
    }

    #[test]
    fn kept_fields_come_from_the_entry_replaced_and_set_ones_from_the_write() {
        let tags = BTreeMap::from([("env".to_owned(), "dev".to_owned())]);
        let previous = KvMetadata {
            version: 4,
            ttl: Some(60),
            tags: tags.clone(),
            created_at: 1_000,
            updated_at: 2_000,
            expires_at: Some(62_000),
        };
        let kept = write(FieldChange::Keep, FieldChange::Keep).metadata(5, 1_000, 3_000, Some(&previous));
        assert_eq!((kept.ttl, kept.expires_at, &kept.tags), (Some(60), Some(62_000), &tags));
        assert_eq!((kept.version, kept.created_at, kept.updated_at), (5, 1_000, 3_000));
        let set = write(FieldChange::Set(Some(10)), FieldChange::Set(BTreeMap::new())).metadata(
            5,
            1_000,
            3_000,
            Some(&previous),
        );
        assert_eq!((set.ttl, set.expires_at, set.tags.len()), (Some(10), Some(13_000), 0));
        let cleared = write(FieldChange::Set(None), FieldChange::Keep).metadata(5, 1_000, 3_000, Some(&previous));
        assert_eq!((cleared.ttl, cleared.expires_at, cleared.tags), (None, None, tags));
        let fresh = write(FieldChange::Keep, FieldChange::Keep).metadata(1, 3_000, 3_000, None);
        assert_eq!((fresh.ttl, fresh.expires_at, fresh.tags.len()), (None, None, 0));
    }
}
