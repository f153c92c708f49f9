//! `POST /api/v1/events`: agents that cannot speak Kafka post events here,
//! and the pipeline's `http` source reads them.
//!
//! A request carries a JSON array of events (`Content-Type: application/json`)
//! or one event per line (`application/x-ndjson`). It needs the `write` scope,
//! by JWT or API key, and the events belong to the credential's tenant: an
//! event without `tenant` gets it, an event naming another tenant is refused.
//! Each element is judged on its own: the valid ones are accepted while the
//! others are reported back by position (`index`: the array position, or the
//! 0-based line of NDJSON) and reason, and go to the source's dead letters.
//! The answer is 202 with `{accepted, rejected, errors}` when anything was
//! accepted (or the batch was empty), else 422 with the same in `details`.
//!
//! Accepted events wait in the engine's bounded [`IngestQueue`]. A request
//! that does not fit takes nothing and is answered 429 with `Retry-After`, so
//! that clients retry whole requests; one larger than the queue could ever
//! hold is 413, as is a body over `limits.max_body_bytes`. Without a running
//! `http` source, or once the pipeline is stopping, the route answers 503
//! `ingest_unavailable`. Accepted means queued in memory: a stop discards
//! what is queued with the windows still open, as it does for every source.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use pulse_core::Event;
use pulse_core::ingest::{Candidate, IngestQueue, OfferError, Offered};
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::middleware::CORRELATION_ID;
use crate::state::AppState;

/// Seconds a client is asked to wait after a full queue.
const RETRY_AFTER_SECS: u64 = 1;

/// The NDJSON media types accepted (the first is the documented one).
const NDJSON_TYPES: [&str; 3] = ["application/x-ndjson", "application/ndjson", "application/jsonl"];

/// What `POST /api/v1/events` did with a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResult {
    /// Events queued for the pipeline.
    pub accepted: usize,
    /// Elements refused (each listed in `errors`).
    pub rejected: usize,
    /// Why each refused element was refused, in request order.
    pub errors: Vec<EventError>,
}

/// A refused element of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventError {
    /// Its 0-based position: the array index, or the line of NDJSON.
    pub index: usize,
    /// Why it was refused.
    pub reason: String,
}

impl From<Offered> for IngestResult {
    fn from(offered: Offered) -> Self {
        Self {
            accepted: offered.accepted,
            rejected: offered.rejected.len(),
            errors: offered
                .rejected
                .into_iter()
                .map(|rejection| EventError {
                    index: rejection.index,
                    reason: rejection.reason,
                })
                .collect(),
        }
    }
}

/// An event as posted (the documentation of the envelope; the decoder of
/// `pulse_core::Event` is what checks it).
#[derive(ToSchema)]
#[schema(as = IngestEvent)]
#[allow(dead_code)]
pub struct EventDoc {
    /// Event time, epoch milliseconds; within the source's `min_timestamp` and `max_future`.
    #[schema(minimum = 0, format = Int64)]
    ts: u64,
    /// The tenant; when given, it must be the credential's.
    #[schema(nullable = false)]
    tenant: Option<String>,
    /// The agent, host or watcher that produced it.
    source: String,
    /// Which body the event has.
    kind: KindDoc,
    /// `metric`: the metric name.
    #[schema(nullable = false)]
    metric: Option<String>,
    /// `metric`: the sample, a finite number.
    #[schema(nullable = false)]
    value: Option<f64>,
    /// `metric`: free-form dimensions.
    #[schema(nullable = false)]
    labels: Option<BTreeMap<String, String>>,
    /// `k8s_event`, `log`: the object it is about.
    #[schema(nullable = false)]
    resource: Option<ResourceDoc>,
    /// `k8s_event`: machine-readable reason.
    #[schema(nullable = false)]
    reason: Option<String>,
    /// `k8s_event`: `info`, `warning`, `error` or `critical`.
    #[schema(nullable = false)]
    severity: Option<String>,
    /// `k8s_event`, `log`: the message.
    #[schema(nullable = false)]
    message: Option<String>,
    /// `topology`: edge tail.
    #[schema(nullable = false)]
    from: Option<ResourceDoc>,
    /// `topology`: edge head.
    #[schema(nullable = false)]
    to: Option<ResourceDoc>,
    /// `topology`: relation name, e.g. `RUNS_ON`.
    #[schema(nullable = false)]
    relation: Option<String>,
    /// `topology`: `upsert` (default) or `delete`.
    #[schema(nullable = false)]
    op: Option<String>,
    /// `log`: the level.
    #[schema(nullable = false)]
    level: Option<String>,
}

/// The kinds of event.
#[derive(ToSchema)]
#[schema(as = IngestEventKind)]
#[allow(dead_code)]
#[allow(non_camel_case_types)]
enum KindDoc {
    metric,
    k8s_event,
    topology,
    log,
}

/// A Kubernetes object.
#[derive(ToSchema)]
#[schema(as = IngestResource)]
#[allow(dead_code)]
struct ResourceDoc {
    /// `Pod`, `Node`, …
    kind: String,
    /// Namespace; empty for cluster-scoped objects.
    #[schema(nullable = false)]
    namespace: Option<String>,
    /// Object name.
    name: String,
}

/// How the body lists its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    /// A JSON array.
    Array,
    /// One JSON object per line.
    Lines,
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, AppError> {
    let unsupported = || {
        AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send `Content-Type: application/json` (a JSON array of events) or `application/x-ndjson` (one event per line)",
        )
    };
    let value = headers.get(header::CONTENT_TYPE).ok_or_else(unsupported)?;
    let essence = value.to_str().map_err(|_| unsupported())?;
    let essence = essence
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyFormat::Array),
        media if NDJSON_TYPES.contains(&media) => Ok(BodyFormat::Lines),
        _ => Err(unsupported()),
    }
}

/// Accepts a batch of events for the pipeline's `http` source.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest",
    request_body(description = "a JSON array of events (`application/json`), or one event object per line (`application/x-ndjson`; blank lines are skipped)", content(
        (Vec<EventDoc> = "application/json"),
        (String = "application/x-ndjson"),
    )),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "the valid events were queued; `errors` lists the refused ones", body = IngestResult),
        (status = 413, description = "the body is over `limits.max_body_bytes`, or has more events than the ingest queue holds (`payload_too_large`)"),
        (status = 422, description = "no event was accepted; `details` has the `IngestResult` with every reason (`validation_failed`)"),
        (status = 429, description = "the ingest queue is full and took nothing (`queue_full`; `Retry-After` says when to retry), or over the rate limit (`rate_limited`)"),
        (status = 503, description = "no `http` source runs in this process, or the pipeline is stopping (`ingest_unavailable`)"),
    ))]
pub async fn post_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestResult>), AppError> {
    principal.require(Scope::Write)?;
    let queue = state.ingest.get().cloned().ok_or_else(|| {
        unavailable(
            "no pipeline with an `http` source runs in this process: add `[sources.NAME]` with \
             `type = \"http\"` to the pipeline to accept events here",
        )
    })?;
    let format = body_format(&headers)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::too_large(rejection.body_text()),
        status => AppError::new(status, "invalid_body", rejection.body_text()),
    })?;
    let request = headers
        .get(CORRELATION_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let tenant = principal.tenant.clone();
    // Decoding a few MiB of JSON is CPU work: off the threads that serve requests.
    let offered = tokio::task::spawn_blocking(move || decode_and_offer(&queue, &request, &body, format, &tenant))
        .await
        .map_err(AppError::internal)??;
    let result = IngestResult::from(offered);
    if result.accepted == 0 && result.rejected > 0 {
        let message = format!(
            "none of the {} events was accepted; see details.errors",
            result.rejected
        );
        let details = serde_json::to_value(&result).map_err(AppError::internal)?;
        return Err(AppError::invalid(message).with_details(details));
    }
    Ok((StatusCode::ACCEPTED, Json(result)))
}

fn unavailable(message: &str) -> AppError {
    AppError::new(StatusCode::SERVICE_UNAVAILABLE, "ingest_unavailable", message)
}

/// Decodes `body` and offers its events to `queue` as `tenant`'s.
fn decode_and_offer(
    queue: &IngestQueue,
    request: &str,
    body: &[u8],
    format: BodyFormat,
    tenant: &str,
) -> Result<Offered, AppError> {
    let component = queue.component().to_owned();
    let refused = |reason: &'static str| {
        metrics::counter!("pulse_ingest_requests_refused_total", "component" => component.clone(), "reason" => reason)
            .increment(1);
    };
    let text = std::str::from_utf8(body).map_err(|error| {
        AppError::bad_request(
            "invalid_json",
            format!("the body is not UTF-8 (at byte {})", error.valid_up_to()),
        )
    })?;
    // More elements than the queue holds are refused before any is decoded,
    // so that a body of tiny elements cannot cost more than its own size.
    let capacity = queue.capacity();
    let elements: Vec<(usize, &str)> = match format {
        BodyFormat::Array => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let (elements, count) = BoundedElements { limit: capacity }
                .deserialize(&mut deserializer)
                .and_then(|elements| deserializer.end().map(|()| elements))
                .map_err(|error| {
                    AppError::bad_request(
                        "invalid_json",
                        format!("the body is not a JSON array of events: {error}"),
                    )
                })?;
            if count > capacity {
                refused("too_large");
                return Err(AppError::too_large(
                    OfferError::TooLarge {
                        offered: count,
                        capacity,
                    }
                    .to_string(),
                ));
            }
            elements.into_iter().map(RawValue::get).enumerate().collect()
        }
        BodyFormat::Lines => {
            let lines = text
                .split('\n')
                .enumerate()
                .map(|(index, line)| (index, line.strip_suffix('\r').unwrap_or(line)))
                .filter(|(_, line)| !line.trim().is_empty());
            let count = lines.clone().count();
            if count > capacity {
                refused("too_large");
                return Err(AppError::too_large(
                    OfferError::TooLarge {
                        offered: count,
                        capacity,
                    }
                    .to_string(),
                ));
            }
            lines.collect()
        }
    };
    let candidates = elements
        .into_iter()
        .map(|(index, raw)| (index, decode_event(raw, tenant)))
        .collect();
    match queue.offer(request, candidates) {
        Ok(offered) => {
            let count = |outcome: &'static str, n: usize| {
                metrics::counter!("pulse_ingest_events_total", "component" => component.clone(), "outcome" => outcome)
                    .increment(n as u64);
            };
            count("accepted", offered.accepted);
            count("rejected", offered.rejected.len());
            Ok(offered)
        }
        Err(error @ OfferError::Full { .. }) => {
            refused("queue_full");
            Err(AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!("{error}; retry later"),
            )
            .with_retry_after(RETRY_AFTER_SECS))
        }
        Err(error @ OfferError::TooLarge { .. }) => {
            refused("too_large");
            Err(AppError::too_large(error.to_string()))
        }
        Err(error @ OfferError::Closed) => {
            refused("closed");
            Err(unavailable(&error.to_string()))
        }
    }
}

/// The elements of a JSON array, kept as raw text up to `limit` of them, and
/// how many there are (those past the limit are only counted).
struct BoundedElements {
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for BoundedElements {
    type Value = (Vec<&'de RawValue>, usize);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedElements {
    type Value = (Vec<&'de RawValue>, usize);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::new();
        let mut count = 0;
        while count < self.limit {
            match seq.next_element::<&'de RawValue>()? {
                Some(element) => elements.push(element),
                None => return Ok((elements, count)),
            }
            count += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
        }
        Ok((elements, count))
    }
}

/// Longest reason given for one refused element: a serde message may quote
/// the offending value, which may be large.
const MAX_REASON_CHARS: usize = 512;

fn bounded_reason(mut reason: String) -> String {
    if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

/// One element of a batch: the event, or why it is refused.
fn decode_event<'a>(raw: &'a str, tenant: &str) -> Candidate<'a> {
    let decoded = match Event::from_json(raw.as_bytes()) {
        Err(error) if error.to_string().starts_with("missing field `tenant`") => with_tenant(raw, tenant),
        decoded => decoded,
    };
    match decoded {
        Ok(event) if event.tenant == tenant => Candidate::Decoded { event, raw },
        Ok(event) => Candidate::Refused {
            reason: format!(
                "the event names tenant {:?}, but the credential is tenant {tenant:?}'s: events are accepted for the \
                 credential's tenant only",
                event.tenant.as_str()
            ),
            raw,
        },
        Err(error) => Candidate::Refused {
            reason: bounded_reason(error.to_string()),
            raw,
        },
    }
}

/// Decodes an event that names no tenant as `tenant`'s.
fn with_tenant(raw: &str, tenant: &str) -> Result<Event, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_str(raw)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("tenant".to_owned(), serde_json::Value::String(tenant.to_owned()));
    }
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: u64 = 1_765_000_000_000;

    fn metric(tenant: Option<&str>) -> String {
        let tenant = tenant.map_or(String::new(), |t| format!(r#""tenant":"{t}","#));
        format!(r#"{{"ts":{TS},{tenant}"source":"s","kind":"metric","metric":"cpu","value":0.5}}"#)
    }

    #[test]
    fn events_without_a_tenant_get_the_credentials_and_others_are_refused() {
        let own = metric(Some("acme"));
        assert!(matches!(decode_event(&own, "acme"), Candidate::Decoded { event, .. } if event.tenant == "acme"));
        let none = metric(None);
        assert!(matches!(decode_event(&none, "acme"), Candidate::Decoded { event, .. } if event.tenant == "acme"));
        let other = metric(Some("globex"));
        let Candidate::Refused { reason, raw } = decode_event(&other, "acme") else {
            panic!("another tenant's event is refused")
        };
        assert!(reason.contains("\"globex\"") && reason.contains("\"acme\""), "{reason}");
        assert_eq!(raw, other);
        let Candidate::Refused { reason, .. } = decode_event(r#"{"ts":1,"source":"s","kind":"metric"}"#, "acme") else {
            panic!("an incomplete event is refused")
        };
        assert!(reason.contains("missing field `value`"), "{reason}");
    }

    #[test]
    fn ndjson_errors_are_numbered_by_line_and_blank_lines_skipped() {
        let queue = IngestQueue::new("in", 100, pulse_core::Shutdown::new(), |_| None);
        let body = format!("{}\n\n{{broken\r\n{}\n", metric(None), metric(Some("acme")));
        let offered = decode_and_offer(&queue, "r", body.as_bytes(), BodyFormat::Lines, "acme").unwrap();
        assert_eq!(offered.accepted, 2);
        assert_eq!(offered.rejected.len(), 1);
        assert_eq!(offered.rejected[0].index, 2);
    }

    #[test]
    fn more_elements_than_the_queue_holds_are_refused_before_decoding() {
        let queue = IngestQueue::new("in", 3, pulse_core::Shutdown::new(), |_| None);
        for (format, body) in [
            (BodyFormat::Array, "[1,2,3,4,5]"),
            (BodyFormat::Lines, "1\n2\n\n3\n4\n"),
        ] {
            let error = decode_and_offer(&queue, "r", body.as_bytes(), format, "acme").unwrap_err();
            assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE, "{format:?}");
            assert!(
                error.to_string().contains("of 5 events") || error.to_string().contains("of 4 events"),
                "{error}"
            );
        }
        assert!(queue.is_empty());
        let offered = decode_and_offer(&queue, "r", b"[1,2,3]", BodyFormat::Array, "acme").unwrap();
        assert_eq!(offered.rejected.len(), 3, "three fit, and are refused one by one");
        let error = decode_and_offer(&queue, "r", b"[1,2] x", BodyFormat::Array, "acme").unwrap_err();
        assert_eq!(error.code(), "invalid_json", "trailing text after the array");
    }

    #[test]
    fn long_reasons_are_cut() {
        let huge = format!("[\"{}\"]", "x".repeat(10_000));
        let queue = IngestQueue::new("in", 3, pulse_core::Shutdown::new(), |_| None);
        let offered = decode_and_offer(&queue, "r", huge.as_bytes(), BodyFormat::Array, "acme").unwrap();
        assert!(offered.rejected[0].reason.chars().count() <= MAX_REASON_CHARS + 1);
    }

    #[test]
    fn content_types_choose_the_format() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            body_format(&headers).map_err(|error| error.status())
        };
        assert_eq!(with("application/json; charset=utf-8"), Ok(BodyFormat::Array));
        assert_eq!(with("Application/X-NDJSON"), Ok(BodyFormat::Lines));
        assert_eq!(with("text/plain"), Err(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(
            body_format(&HeaderMap::new()).map_err(|e| e.status()),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }
}
