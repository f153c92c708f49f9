//! The tenant-scoped key-value API: request and response shapes, validation
//! against the configured limits, and the handlers (in [`handlers`]).

pub mod handlers;

use std::collections::BTreeMap;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Error as _, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::config::LimitsConfig;
use crate::error::AppError;
use crate::store::{FieldChange, KvMetadata, KvWrite};
use crate::timestamp::rfc3339;

/// Most tags on one entry.
const MAX_TAGS: usize = 32;
/// Longest tag name or value in characters.
const MAX_TAG_CHARS: usize = 128;
/// Longest TTL: ten years.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
/// Redis keeps metadata at `kv:{tenant}:{key}:metadata`, so a key ending like that would alias another's metadata.
const RESERVED_SUFFIX: &str = ":metadata";

/// What a key must look like (the OpenAPI pattern; [`validate_key`] checks
/// the same): no control characters, not ending in `:metadata`. Its length,
/// 1–256 characters by default, is checked against `limits.max_key_chars`.
pub const KEY_PATTERN: &str = r"^(?![\s\S]*:metadata$)[^\u0000-\u001F\u007F-\u009F]+$";

/// The OpenAPI schema of a key (in a body or a path).
pub fn key_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .min_length(Some(1))
        .max_length(Some(256))
        .pattern(Some(KEY_PATTERN))
        .description(Some(
            "1–256 characters (`limits.max_key_chars`; longer is a 413), no control characters, \
             not ending in `:metadata`",
        ))
        .build()
        .into()
}

/// Any JSON value (a KV value).
fn any_value_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some("any JSON value"))
        .build()
        .into()
}

/// Reads a TTL in seconds: a whole number, which JSON may also spell `60.0`
/// (the schema's `integer` admits it), or null.
pub fn whole_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    crate::extract::whole_number(&number)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("ttl {number} is not a whole number of seconds")))
}

/// A TTL in seconds, or null.
fn ttl_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(1))
        .maximum(Some(MAX_TTL_SECS))
        .build()
        .into()
}

/// Tags: up to 32 names (1–128 characters, no `:`) with values of at most 128 characters.
fn tags_schema() -> Schema {
    let value = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .max_length(Some(MAX_TAG_CHARS));
    let name = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .min_length(Some(1))
        .max_length(Some(MAX_TAG_CHARS))
        .pattern(Some("^[^:]*$"));
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .max_properties(Some(MAX_TAGS))
        .property_names(Some(name))
        .additional_properties(Some(RefOr::T(Schema::Object(value.build()))))
        .description(Some(
            "labels for `tag_filter`: up to 32, names 1–128 characters without `:`, values ≤ 128 characters",
        ))
        .build()
        .into()
}

/// `POST /kv` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEntry {
    /// The key: 1–256 bytes (configurable), no control characters.
    #[schema(schema_with = key_schema)]
    pub key: String,
    /// Any JSON value, up to 2 MiB (configurable; larger is a 413).
    #[schema(schema_with = any_value_schema)]
    pub value: Box<RawValue>,
    /// Seconds until the entry expires (1 to ten years); omitted or null for no expiry.
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(schema_with = ttl_schema)]
    pub ttl: Option<u64>,
    /// Labels for `tag_filter`.
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: BTreeMap<String, String>,
}

/// `PUT /kv/{key}` body: replaces the value; the TTL and the tags change only
/// when given, so a body with just a value keeps them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceEntry {
    /// The new value.
    #[schema(schema_with = any_value_schema)]
    pub value: Box<RawValue>,
    /// Seconds until the entry expires, counted from this write; `null` removes
    /// the expiry; omitted keeps the entry's expiry time as it is.
    #[serde(default, deserialize_with = "given_whole_seconds")]
    #[schema(schema_with = ttl_schema)]
    pub ttl: FieldChange<Option<u64>>,
    /// The new tags, replacing all of them; `{}`, `[]` or `null` removes them;
    /// omitted keeps them.
    #[serde(default, deserialize_with = "replacement_tags")]
    #[schema(schema_with = replacement_tags_schema)]
    pub tags: FieldChange<BTreeMap<String, String>>,
}

/// Reads a `ttl` that is present, even as `null`, as [`FieldChange::Set`]
/// (an absent one is [`FieldChange::Keep`] by `#[serde(default)]`).
fn given_whole_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FieldChange<Option<u64>>, D::Error> {
    whole_seconds(deserializer).map(FieldChange::Set)
}

/// The `tags` of a `PUT`: tags as in a create, or `null` or `[]` for none.
fn replacement_tags_schema() -> Schema {
    let none = ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null));
    let empty_list = utoipa::openapi::schema::ArrayBuilder::new().max_items(Some(0));
    Schema::OneOf(
        OneOfBuilder::new()
            .item(tags_schema())
            .item(none)
            .item(empty_list)
            .description(Some(
                "the new tags, replacing all of them; `{}`, `[]` or `null` removes them; omitted keeps them",
            ))
            .build(),
    )
}

/// Reads the `tags` of a `PUT`: an object of tags, or `{}`, `[]` or `null` for none.
fn replacement_tags<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<FieldChange<BTreeMap<String, String>>, D::Error> {
    struct TagsVisitor;

    impl<'de> Visitor<'de> for TagsVisitor {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("an object of tags (name to value), or {}, [] or null for none")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            BTreeMap::deserialize(MapAccessDeserializer::new(map))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            match seq.next_element::<IgnoredAny>()? {
                None => Ok(BTreeMap::new()),
                Some(_) => Err(A::Error::invalid_value(Unexpected::Seq, &self)),
            }
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
    }

    deserializer.deserialize_any(TagsVisitor).map(FieldChange::Set)
}

/// The `{key}` path parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key.
    #[param(schema_with = key_schema)]
    pub key: String,
}

/// Metadata as returned.
#[derive(Serialize, ToSchema)]
pub struct MetadataView {
    /// 1 on creation, +1 per update.
    pub version: u64,
    /// The TTL in seconds the entry's expiry time was set with (by the last
    /// write that gave a `ttl`); none when it does not expire.
    pub ttl: Option<u64>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<KvMetadata> for MetadataView {
    fn from(metadata: KvMetadata) -> Self {
        Self {
            version: metadata.version,
            ttl: metadata.ttl,
            tags: metadata.tags,
            created_at: rfc3339(metadata.created_at),
            updated_at: rfc3339(metadata.updated_at),
        }
    }
}

/// A key and its metadata (written, or listed).
#[derive(Serialize, ToSchema)]
pub struct EntryInfo {
    /// The key.
    pub key: String,
    /// Its metadata.
    pub metadata: MetadataView,
}

/// A key with its value and metadata.
#[derive(Serialize, ToSchema)]
pub struct EntryView {
    /// The key.
    pub key: String,
    /// The value, as written.
    #[schema(schema_with = any_value_schema)]
    pub value: Box<RawValue>,
    /// Its metadata.
    pub metadata: MetadataView,
}

/// `GET /kv` parameters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page number from 1 (default 1).
    #[param(format = Int64, minimum = 1, maximum = 4_294_967_295_u64)]
    pub page: Option<u32>,
    /// Keys per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
    /// Only keys tagged `name:value`.
    #[param(pattern = ":")]
    pub tag_filter: Option<String>,
}

/// A page of keys in key order.
#[derive(Serialize, ToSchema)]
pub struct EntryPage {
    /// The keys of this page.
    pub items: Vec<EntryInfo>,
    /// This page's number.
    pub page: u64,
    /// Keys per page.
    pub page_size: u64,
    /// Matching keys in all.
    pub total: u64,
}

/// `GET /kv/{key}/exists`.
#[derive(Serialize, ToSchema)]
pub struct Exists {
    /// The key.
    pub key: String,
    /// Whether a live entry exists.
    pub exists: bool,
}

/// `GET /kv/{key}/ttl`.
#[derive(Serialize, ToSchema)]
pub struct TtlView {
    /// The key.
    pub key: String,
    /// Seconds remaining (rounded up), or -1 when the entry does not expire.
    pub ttl: i64,
}

/// `GET /kv/stats/count`.
#[derive(Serialize, ToSchema)]
pub struct Count {
    /// Live keys of the tenant.
    pub count: u64,
}

/// What a batch operation does.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchOpKind {
    /// Create or overwrite (`value` required).
    Set,
    /// Remove an existing key.
    Delete,
}

/// One operation of `POST /kv/batch`. (A struct rather than a tagged enum:
/// serde cannot keep a raw JSON value inside an internally tagged enum.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchOperation {
    /// `set` or `delete`.
    pub op: BatchOpKind,
    /// The key.
    pub key: String,
    /// The value (`set` only).
    #[serde(default)]
    pub value: Option<Box<RawValue>>,
    /// TTL in seconds (`set` only).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub ttl: Option<u64>,
    /// Tags (`set` only).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl PartialSchema for BatchOperation {
    /// `{"op":"set","key","value","ttl"?,"tags"?}` or `{"op":"delete","key"}`.
    fn schema() -> RefOr<Schema> {
        let op = |name: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .enum_values(Some([name]))
        };
        let not_null = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::Boolean,
                Type::Number,
                Type::String,
                Type::Object,
                Type::Array,
            ]))
            .description(Some("any JSON value but null"));
        let set = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .property("op", op("set"))
            .property("key", key_schema())
            .property("value", not_null)
            .property("ttl", ttl_schema())
            .property("tags", tags_schema())
            .required("op")
            .required("key")
            .required("value")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some("create or overwrite `key` (`value` must not be null)"));
        let null = || ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null));
        let no_tags = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .max_properties(Some(0));
        let delete = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .property("op", op("delete"))
            .property("key", key_schema())
            .property("value", null())
            .property("ttl", null())
            .property("tags", no_tags)
            .required("op")
            .required("key")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some("remove the existing `key`"));
        RefOr::T(Schema::OneOf(OneOfBuilder::new().item(set).item(delete).build()))
    }
}

impl ToSchema for BatchOperation {}

/// `POST /kv/batch` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1–1000 operations (configurable), applied in order, all or nothing.
    #[schema(min_items = 1, max_items = 1000)]
    pub operations: Vec<BatchOperation>,
}

/// The result of one batch operation.
#[derive(Serialize, ToSchema)]
pub struct BatchItemResult {
    /// Position in the request.
    pub index: usize,
    /// The key.
    pub key: String,
    /// `set` or `delete`.
    pub op: &'static str,
    /// `created`, `updated`, `deleted`; or, in a rejected batch, `invalid`, `not_found` or `not_applied`.
    pub status: &'static str,
    /// The version written (or removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why this item failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /kv/batch` response.
#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    /// Whether the operations were applied (always true in a 200 answer).
    pub committed: bool,
    /// One result per operation.
    pub results: Vec<BatchItemResult>,
}

/// Checks a key against the limits: 413 when too long, 422 when malformed.
pub fn validate_key(limits: &LimitsConfig, key: &str) -> Result<(), AppError> {
    let length = key.chars().count();
    if length > limits.max_key_chars {
        return Err(AppError::too_large(format!(
            "key is {length} characters; the limit is {}",
            limits.max_key_chars
        )));
    }
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "key must be non-empty and free of control characters",
        ));
    }
    if key.ends_with(RESERVED_SUFFIX) {
        return Err(AppError::invalid(format!("keys may not end with {RESERVED_SUFFIX:?}")));
    }
    Ok(())
}

/// Checks a write and turns it into a [`KvWrite`]; a TTL or tags left as
/// [`FieldChange::Keep`] are kept from the entry the write replaces.
pub fn validate_write(
    limits: &LimitsConfig,
    key: String,
    value: &RawValue,
    ttl: FieldChange<Option<u64>>,
    tags: FieldChange<BTreeMap<String, String>>,
) -> Result<KvWrite, AppError> {
    validate_key(limits, &key)?;
    let value = value.get();
    if value.len() > limits.max_value_bytes {
        return Err(AppError::too_large(format!(
            "value is {} bytes; the limit is {}",
            value.len(),
            limits.max_value_bytes
        )));
    }
    if let FieldChange::Set(Some(ttl)) = ttl
        && !(1..=MAX_TTL_SECS).contains(&ttl)
    {
        return Err(AppError::invalid(format!(
            "ttl must be between 1 and {MAX_TTL_SECS} seconds"
        )));
    }
    if let FieldChange::Set(tags) = &tags {
        validate_tags(tags)?;
    }
    Ok(KvWrite {
        key,
        value: value.to_owned(),
        ttl,
        tags,
    })
}

fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), AppError> {
    if tags.len() > MAX_TAGS {
        return Err(AppError::invalid(format!("at most {MAX_TAGS} tags")));
    }
    for (name, tag_value) in tags {
        let too_long = |text: &str| text.chars().count() > MAX_TAG_CHARS;
        if name.is_empty() || name.contains(':') || too_long(name) || too_long(tag_value) {
            return Err(AppError::invalid(format!(
                "tag names must be 1-{MAX_TAG_CHARS} characters without ':', values at most {MAX_TAG_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// Seconds left at `now` until `expires_at` (rounded up), or -1 without expiry.
pub fn remaining_secs(expires_at: Option<i64>, now: i64) -> i64 {
    match expires_at {
        Some(at) => ((at - now).max(0).unsigned_abs().div_ceil(1000))
            .try_into()
            .unwrap_or(i64::MAX),
        None => -1,
    }
}
