//! The live answer of `incidents` operators: [`IncidentRecord`]s published
//! on the WebSocket topic `incidents` and kept by [`IncidentViews`] for
//! `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}` and `GET /api/v1/rca`.
//!
//! The operator's answer is a differential collection: an incident's report
//! is retracted and inserted again whenever it changes (a member joins, a
//! late cause re-ranks the causes, it closes). The engine publishes every
//! inserted report; the view keeps, per tenant, the newest report of each
//! incident, at most `max_per_tenant` incidents (those opened earliest go
//! first), so its memory is bounded whatever the run's length. An incident
//! the operator forgets (after its retention) stays in the view until pushed
//! out; older incidents are for the file or database sinks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use pulse_live::{LiveSource, Publishable};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Incidents kept per tenant by default.
pub const DEFAULT_INCIDENTS_PER_TENANT: usize = 5_000;

/// A resource as the incident rows name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
pub struct ResourceName {
    /// `Pod`, `Service`, `Node`, ...
    pub kind: String,
    /// Its namespace; `""` for cluster-wide resources such as Nodes.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// One incident as it stands now: the columns of an incidents operator's row.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct IncidentRecord {
    /// The tenant.
    pub tenant: String,
    /// The incident's id (unique within the tenant).
    pub incident_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// Event time of the error that opened it, epoch ms.
    pub opened_at: u64,
    /// When it closed (epoch ms), while open `null`.
    pub closed_at: Option<u64>,
    /// The resource whose error opened it.
    pub symptom: ResourceName,
    /// The opening error's reason.
    pub symptom_reason: String,
    /// The best cause (`kind/namespace/name`), if any.
    pub top_cause: Option<String>,
    /// Its confidence in [0, 1].
    pub top_confidence: Option<f64>,
    /// The ranked causes, best first: `resource`, `event_ts`, `reason`, `confidence`, `explanation`.
    #[schema(value_type = Vec<Object>)]
    pub causes: Vec<Value>,
    /// How many versions of this incident were published (1 + re-rankings and closing).
    pub revision: u64,
}

/// Why a row could not be read as an incident.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IncidentRowError {
    /// A column is missing or of the wrong type.
    #[error("incident row: `{0}` is missing or of the wrong type")]
    Column(&'static str),
    /// The `causes` column is not a JSON array.
    #[error("incident row: `causes` is not a JSON array: {0}")]
    Causes(String),
}

impl IncidentRecord {
    /// Reads a row of an incidents operator, serialised flat (`tenant`,
    /// `incident_id`, `opened_at`, `closed_at`, `symptom_kind`, ...).
    ///
    /// # Examples
    /// ```
    /// use pulse_gateway::live::incidents::IncidentRecord;
    ///
    /// let row = serde_json::json!({"tenant": "acme", "incident_id": "acme-1", "opened_at": 5,
    ///     "closed_at": null, "symptom_kind": "Pod", "symptom_namespace": "prod", "symptom_name": "api-1",
    ///     "symptom_reason": "CrashLoopBackOff", "top_cause": null, "top_confidence": null, "causes": "[]"});
    /// let record = IncidentRecord::from_row(&row).unwrap();
    /// assert_eq!((record.status.as_str(), record.symptom.name.as_str()), ("open", "api-1"));
    /// ```
    pub fn from_row(row: &Value) -> Result<Self, IncidentRowError> {
        let text = |name: &'static str| {
            row.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(IncidentRowError::Column(name))
        };
        let causes_text = text("causes")?;
        let causes = match serde_json::from_str::<Value>(&causes_text) {
            Ok(Value::Array(causes)) => causes,
            Ok(other) => return Err(IncidentRowError::Causes(other.to_string())),
            Err(error) => return Err(IncidentRowError::Causes(error.to_string())),
        };
        let closed_at = row.get("closed_at").and_then(Value::as_u64);
        Ok(Self {
            tenant: text("tenant")?,
            incident_id: text("incident_id")?,
            status: if closed_at.is_some() { "closed" } else { "open" }.to_owned(),
            opened_at: row
                .get("opened_at")
                .and_then(Value::as_u64)
                .ok_or(IncidentRowError::Column("opened_at"))?,
            closed_at,
            symptom: ResourceName {
                kind: text("symptom_kind")?,
                namespace: text("symptom_namespace")?,
                name: text("symptom_name")?,
            },
            symptom_reason: text("symptom_reason")?,
            top_cause: row.get("top_cause").and_then(Value::as_str).map(str::to_owned),
            top_confidence: row.get("top_confidence").and_then(Value::as_f64),
            causes,
            revision: 1,
        })
    }

    /// The incident without its causes, as lists show it.
    pub fn summary(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(object) = &mut value {
            let count = self.causes.len();
            object.remove("causes");
            object.insert("cause_count".into(), count.into());
        }
        value
    }
}

impl Publishable for IncidentRecord {
    fn tenant(&self) -> Option<&str> {
        Some(&self.tenant)
    }

    fn key_str(&self, name: &str) -> Option<&str> {
        match name {
            "tenant" => Some(&self.tenant),
            "incident_id" => Some(&self.incident_id),
            "status" => Some(&self.status),
            "symptom_kind" => Some(&self.symptom.kind),
            "symptom_namespace" => Some(&self.symptom.namespace),
            "symptom_name" => Some(&self.symptom.name),
            _ => None,
        }
    }

    /// `{"type":"incident","pipeline","operator",<the record's fields>,"published_at_us"}`.
    fn to_message(&self, source: &LiveSource, published_at_us: u64) -> bytes::Bytes {
        let mut message = Map::new();
        message.insert("type".into(), "incident".into());
        message.insert("pipeline".into(), source.pipeline.clone().into());
        message.insert("operator".into(), source.operator.clone().into());
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            message.extend(fields);
        }
        message.insert("published_at_us".into(), published_at_us.into());
        serde_json::to_vec(&Value::Object(message))
            .map(bytes::Bytes::from)
            .unwrap_or_default()
    }
}

/// Which incidents a list asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentQuery {
    /// Only `open` (`Some(true)`) or only closed (`Some(false)`) incidents.
    pub open: Option<bool>,
    /// Only incidents opened at or after this (epoch ms).
    pub start: Option<u64>,
    /// Only incidents opened before this (epoch ms).
    pub end: Option<u64>,
}

#[derive(Default)]
struct TenantIncidents {
    by_id: HashMap<String, Arc<IncidentRecord>>,
    /// `(opened_at, id)` of every kept incident, for order and eviction.
    by_opening: BTreeMap<(u64, String), ()>,
}

/// The newest report of each incident, per tenant; cheap to clone (clones share it).
#[derive(Clone)]
pub struct IncidentViews {
    max_per_tenant: usize,
    tenants: Arc<Mutex<HashMap<String, TenantIncidents>>>,
}

impl IncidentViews {
    /// Views keeping at most `max_per_tenant` incidents of each tenant.
    pub fn new(max_per_tenant: usize) -> Self {
        Self {
            max_per_tenant: max_per_tenant.max(1),
            tenants: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, TenantIncidents>> {
        self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps each record as its incident's current state; returns the records
    /// with their revision numbers set, for publishing.
    pub fn record(&self, records: Vec<IncidentRecord>) -> Vec<Arc<IncidentRecord>> {
        let mut tenants = self.lock();
        let mut published = Vec::with_capacity(records.len());
        for mut record in records {
            let kept = tenants.entry(record.tenant.clone()).or_default();
            if let Some(before) = kept.by_id.get(&record.incident_id) {
                record.revision = before.revision + 1;
                kept.by_opening.remove(&(before.opened_at, before.incident_id.clone()));
            }
            kept.by_opening
                .insert((record.opened_at, record.incident_id.clone()), ());
            let record = Arc::new(record);
            kept.by_id.insert(record.incident_id.clone(), Arc::clone(&record));
            while kept.by_id.len() > self.max_per_tenant {
                let Some(((_, oldest), ())) = kept.by_opening.pop_first() else {
                    break;
                };
                kept.by_id.remove(&oldest);
            }
            published.push(record);
        }
        published
    }

    /// The tenant's incidents matching `query`, newest opened first.
    pub fn list(&self, tenant: &str, query: &IncidentQuery) -> Vec<Arc<IncidentRecord>> {
        let tenants = self.lock();
        let Some(kept) = tenants.get(tenant) else {
            return Vec::new();
        };
        kept.by_opening
            .keys()
            .rev()
            .filter_map(|(_, id)| kept.by_id.get(id))
            .filter(|record| {
                query.open.is_none_or(|open| open == record.closed_at.is_none())
                    && query.start.is_none_or(|start| record.opened_at >= start)
                    && query.end.is_none_or(|end| record.opened_at < end)
            })
            .cloned()
            .collect()
    }

    /// One incident of the tenant.
    pub fn get(&self, tenant: &str, incident_id: &str) -> Option<Arc<IncidentRecord>> {
        self.lock().get(tenant)?.by_id.get(incident_id).cloned()
    }

    /// Incidents kept over all tenants.
    pub fn len(&self) -> usize {
        self.lock().values().map(|kept| kept.by_id.len()).sum()
    }

    /// Whether no incident is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for IncidentViews {
    fn default() -> Self {
        Self::new(DEFAULT_INCIDENTS_PER_TENANT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(tenant: &str, id: &str, opened_at: u64, closed_at: Option<u64>, causes: Value) -> Value {
        json!({"tenant": tenant, "incident_id": id, "opened_at": opened_at, "closed_at": closed_at,
               "symptom_kind": "Pod", "symptom_namespace": "prod", "symptom_name": "api-1",
               "symptom_reason": "BackOff", "top_cause": null, "top_confidence": null,
               "causes": causes.to_string()})
    }

    #[test]
    fn a_newer_report_replaces_the_older_and_lists_are_newest_first() {
        let views = IncidentViews::new(10);
        let first = IncidentRecord::from_row(&row("acme", "a", 10, None, json!([{"reason": "x"}]))).unwrap();
        let reranked = IncidentRecord::from_row(&row("acme", "a", 10, Some(50), json!([{"reason": "y"}]))).unwrap();
        let other = IncidentRecord::from_row(&row("acme", "b", 20, None, json!([]))).unwrap();
        views.record(vec![first, other]);
        let published = views.record(vec![reranked]);
        assert_eq!(published[0].revision, 2);
        let all = views.list("acme", &IncidentQuery::default());
        assert_eq!(
            all.iter().map(|r| r.incident_id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(views.get("acme", "a").unwrap().causes[0]["reason"], "y");
        let open = views.list(
            "acme",
            &IncidentQuery {
                open: Some(true),
                ..IncidentQuery::default()
            },
        );
        assert_eq!(open.len(), 1);
        let windowed = views.list(
            "acme",
            &IncidentQuery {
                start: Some(15),
                end: Some(30),
                open: None,
            },
        );
        assert_eq!(windowed[0].incident_id, "b");
        assert!(
            views.get("globex", "a").is_none(),
            "tenants never see each other's incidents"
        );
    }

    #[test]
    fn views_are_bounded_per_tenant_dropping_the_earliest_opened() {
        let views = IncidentViews::new(3);
        for i in 0..5u64 {
            views.record(vec![
                IncidentRecord::from_row(&row("acme", &format!("i{i}"), i, None, json!([]))).unwrap(),
            ]);
        }
        assert_eq!(views.len(), 3);
        assert!(views.get("acme", "i0").is_none() && views.get("acme", "i4").is_some());
    }

    #[test]
    fn malformed_rows_are_refused_with_the_column() {
        assert_eq!(
            IncidentRecord::from_row(&json!({"tenant": "acme"})).unwrap_err(),
            IncidentRowError::Column("causes")
        );
        let bad = row("acme", "a", 1, None, json!({}));
        assert!(matches!(
            IncidentRecord::from_row(&bad),
            Err(IncidentRowError::Causes(_))
        ));
    }
}
