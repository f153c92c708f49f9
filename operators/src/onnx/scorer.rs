//! [`BatchScorer`]: the sessions of one `onnx` operator on one worker, and how
//! a batch of rows becomes predictions (one model, A/B variants of it, or an
//! ensemble).
//!
//! Each *slot* is one session: the single model, one variant, or one
//! ensemble member. A slot without a pinned version follows the model's
//! active version: a [`ReloadWatcher`] thread polls the registry and loads a
//! new version off the worker; the scorer swaps it in between two batches, so
//! a batch is scored whole by one version and every row exactly once.

use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use pulse_core::row::{Row, Value};

use super::features::FeatureReader;
use super::registry::{ModelRegistry, OutputKind};
use super::runtime::{ModelSession, OutputValues};
use super::tenant_models::TenantModels;
use super::{Combine, ModelPlan, OnnxError, OnnxStreamConfig};

/// A row with what the model said of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The row scored.
    pub row: Row,
    /// One value per output column: the model's declared outputs, or the
    /// ensemble's one combined `prediction`.
    pub outputs: Vec<Value>,
    /// The model (for an ensemble: the members' ids, `+`-joined).
    pub model: Arc<str>,
    /// The version that scored it (for an ensemble: the members', `+`-joined).
    pub version: Arc<str>,
    /// How long its batch took in ONNX Runtime, µs.
    pub latency_us: u64,
}

/// A row that was not scored, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct RefusedRow {
    /// The row.
    pub row: Row,
    /// Why (a missing feature, an inference error).
    pub reason: String,
}

/// What became of one row.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Scored.
    Scored(Prediction),
    /// Refused.
    Refused(RefusedRow),
}

/// One session and what it stands for.
struct Slot {
    model: String,
    /// `None`: follows the model's active version.
    pinned: Option<String>,
    weight: f64,
    session: ModelSession,
}

/// The sessions of one operator instance and the batching around them.
pub struct BatchScorer {
    component: String,
    slots: Vec<Slot>,
    plan: ModelPlan,
    key: Vec<String>,
    features: Vec<String>,
    readers: Option<(Arc<pulse_core::RowSchema>, FeatureReader)>,
    config: OnnxStreamConfig,
    /// Tenants' own versions of the model (one model without variants only).
    tenant_sessions: Vec<(String, ModelSession)>,
    reloads: Option<mpsc::Receiver<Reload>>,
    _alive: Arc<()>,
}

/// A version the watcher loaded.
enum Reload {
    /// The new active version of the model of a slot.
    Slot(usize, ModelSession),
    /// The new active version of a tenant's own model.
    Tenant(String, ModelSession),
}

impl BatchScorer {
    /// Loads every slot's session; starts the reload watcher when a slot
    /// follows its model's active version.
    ///
    /// # Errors
    /// What [`load_slots`] reports.
    pub fn new(component: &str, config: &OnnxStreamConfig) -> Result<Self, OnnxError> {
        let slots = load_slots(&config.registry, &config.plan, &config.features)?;
        let alive = Arc::new(());
        let following: Vec<(usize, String, String)> = slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.pinned.is_none())
            .map(|(i, slot)| (i, slot.model.clone(), slot.session.version.clone()))
            .collect();
        let mut tenant_sessions = Vec::new();
        let mut tenants = match &config.plan {
            ModelPlan::Single { model, variants } if variants.is_empty() => Some(TenantModels {
                model: model.clone(),
                features: config.features.clone(),
                outputs: slots[0].session.metadata.outputs.iter().map(|o| o.kind).collect(),
                tried: Default::default(),
            }),
            _ => None,
        };
        if let Some(tenants) = &mut tenants {
            for (tenant, loaded) in tenants.changed(&config.registry) {
                match loaded {
                    Ok(session) => tenant_sessions.push((tenant, session)),
                    Err(error) => tenant_model_refused(component, &error),
                }
            }
        }
        let reloads = (!following.is_empty() && config.reload_interval_ms > 0).then(|| {
            ReloadWatcher {
                component: component.to_owned(),
                registry: config.registry.clone(),
                features: config.features.len(),
                following,
                tenants,
                interval: Duration::from_millis(config.reload_interval_ms),
                alive: Arc::downgrade(&alive),
            }
            .start()
        });
        Ok(Self {
            component: component.to_owned(),
            slots,
            plan: config.plan.clone(),
            key: config.key.clone(),
            features: config.features.clone(),
            readers: None,
            config: config.clone(),
            tenant_sessions,
            reloads,
            _alive: alive,
        })
    }

    /// The versions its slots run now, in slot order.
    pub fn versions(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.session.version.clone()).collect()
    }

    /// Swaps in the versions the watcher loaded since the last call.
    pub fn take_reloads(&mut self) {
        let Some(reloads) = &self.reloads else { return };
        while let Ok(reload) = reloads.try_recv() {
            match reload {
                Reload::Slot(index, session) => {
                    let slot = &mut self.slots[index];
                    tracing::info!(
                        component = %self.component, model = %slot.model,
                        from = %slot.session.version, to = %session.version,
                        "switching to the model's new active version"
                    );
                    slot.session = session;
                }
                Reload::Tenant(tenant, session) => {
                    tracing::info!(
                        component = %self.component, model = %session.model, %tenant, version = %session.version,
                        "scoring the tenant's rows with its own model's active version"
                    );
                    match self.tenant_sessions.iter_mut().find(|(t, _)| *t == tenant) {
                        Some((_, running)) => *running = session,
                        None => self.tenant_sessions.push((tenant, session)),
                    }
                }
            }
        }
    }

    /// Scores `rows` in batches of at most `max_batch`, appending an outcome
    /// per row (in the order of `rows`) to `out`.
    pub fn score(&mut self, rows: Vec<Row>, out: &mut Vec<Outcome>) {
        self.take_reloads();
        let max_batch = self.config.max_batch.max(1);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let batch: Vec<Row> = rows.by_ref().take(max_batch).collect();
            self.score_batch(batch, out);
        }
    }

    fn reader(&mut self, row: &Row) -> Result<&FeatureReader, String> {
        let stale = self
            .readers
            .as_ref()
            .is_none_or(|(schema, _)| !Arc::ptr_eq(schema, row.schema()));
        if stale {
            let reader = FeatureReader::new(row.schema(), &self.features, self.config.missing.clone())
                .map_err(|e| e.to_string())?;
            self.readers = Some((Arc::clone(row.schema()), reader));
        }
        Ok(&self.readers.as_ref().expect("set above").1)
    }

    fn score_batch(&mut self, batch: Vec<Row>, out: &mut Vec<Outcome>) {
        // Features of the rows that have them; the others are refused now.
        let mut features: Vec<f32> = Vec::with_capacity(batch.len() * self.features.len());
        let mut accepted: Vec<Row> = Vec::with_capacity(batch.len());
        for row in batch {
            let read = self.reader(&row).and_then(|reader| reader.read(&row, &mut features));
            match read {
                Ok(()) => accepted.push(row),
                Err(reason) => out.push(Outcome::Refused(RefusedRow { row, reason })),
            }
        }
        if accepted.is_empty() {
            return;
        }
        match &self.plan {
            ModelPlan::Ensemble { .. } => self.score_ensemble(accepted, features, out),
            ModelPlan::Single { .. } => self.score_variants(accepted, features, out),
        }
    }

    /// One model, or A/B variants of it: each row goes to one slot, or to
    /// its tenant's own model (groups after the slots').
    fn score_variants(&mut self, rows: Vec<Row>, features: Vec<f32>, out: &mut Vec<Outcome>) {
        let width = self.features.len();
        let weights: Vec<f64> = self.slots.iter().map(|s| s.weight).collect();
        let groups = self.slots.len() + self.tenant_sessions.len();
        let mut groups: Vec<(Vec<Row>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); groups];
        for (i, row) in rows.into_iter().enumerate() {
            let own = match row.get("tenant") {
                Some(Value::Str(tenant)) if !self.tenant_sessions.is_empty() => {
                    self.tenant_sessions.iter().position(|(t, _)| **t == **tenant)
                }
                _ => None,
            };
            let slot = if let Some(own) = own {
                self.slots.len() + own
            } else if weights.len() == 1 {
                0
            } else {
                pick_variant(&weights, key_hash(&row, &self.key))
            };
            groups[slot].1.extend_from_slice(&features[i * width..(i + 1) * width]);
            groups[slot].0.push(row);
        }
        for (slot, (rows, features)) in groups.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let session = match slot.checked_sub(self.slots.len()) {
                Some(tenant) => &mut self.tenant_sessions[tenant].1,
                None => &mut self.slots[slot].session,
            };
            let started = Instant::now();
            let result = session.predict(features, rows.len());
            let latency_us = started.elapsed().as_micros() as u64;
            let (model, version): (Arc<str>, Arc<str>) =
                (session.model.as_str().into(), session.version.as_str().into());
            record(
                &self.component,
                &model,
                &version,
                rows.len(),
                result.is_err(),
                latency_us,
            );
            match result {
                Ok(outputs) => {
                    for (i, row) in rows.into_iter().enumerate() {
                        let values = session
                            .metadata
                            .outputs
                            .iter()
                            .zip(&outputs)
                            .map(|(spec, values)| match values {
                                OutputValues::Int(v) if spec.kind == OutputKind::Label => Value::Int(v[i]),
                                other => Value::Float(other.as_f64(i)),
                            });
                        out.push(Outcome::Scored(Prediction {
                            row,
                            outputs: values.collect(),
                            model: Arc::clone(&model),
                            version: Arc::clone(&version),
                            latency_us,
                        }));
                    }
                }
                Err(error) => refuse_all(rows, &error, out),
            }
        }
    }

    /// Every member scores every row; their first outputs are combined.
    fn score_ensemble(&mut self, rows: Vec<Row>, features: Vec<f32>, out: &mut Vec<Outcome>) {
        let ModelPlan::Ensemble { combine, .. } = &self.plan else {
            return;
        };
        let combine = *combine;
        let started = Instant::now();
        let mut member_outputs: Vec<(f64, OutputValues)> = Vec::with_capacity(self.slots.len());
        for slot in &mut self.slots {
            let member_started = Instant::now();
            let result = slot.session.predict(features.clone(), rows.len());
            let latency_us = member_started.elapsed().as_micros() as u64;
            record(
                &self.component,
                &slot.model,
                &slot.session.version,
                rows.len(),
                result.is_err(),
                latency_us,
            );
            match result {
                Ok(mut outputs) => member_outputs.push((slot.weight, outputs.swap_remove(0))),
                Err(error) => return refuse_all(rows, &error, out),
            }
        }
        let latency_us = started.elapsed().as_micros() as u64;
        let model: Arc<str> = join(self.slots.iter().map(|s| s.model.as_str())).into();
        let version: Arc<str> = join(self.slots.iter().map(|s| s.session.version.as_str())).into();
        for (i, row) in rows.into_iter().enumerate() {
            let prediction = combine_member_outputs(combine, &member_outputs, i);
            out.push(Outcome::Scored(Prediction {
                row,
                outputs: vec![prediction],
                model: Arc::clone(&model),
                version: Arc::clone(&version),
                latency_us,
            }));
        }
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join("+")
}

/// Row `i`'s combined prediction.
fn combine_member_outputs(combine: Combine, members: &[(f64, OutputValues)], i: usize) -> Value {
    match combine {
        Combine::Mean => Value::Float(members.iter().map(|(_, o)| o.as_f64(i)).sum::<f64>() / members.len() as f64),
        Combine::WeightedMean => {
            let total: f64 = members.iter().map(|(w, _)| w).sum();
            Value::Float(members.iter().map(|(w, o)| w * o.as_f64(i)).sum::<f64>() / total)
        }
        Combine::MajorityVote => {
            // Votes weighted by member weight; a tie goes to the smallest label.
            let mut votes: Vec<(i64, f64)> = Vec::new();
            for (weight, output) in members {
                let label = output.as_f64(i) as i64;
                match votes.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, total)) => *total += weight,
                    None => votes.push((label, *weight)),
                }
            }
            votes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            Value::Int(votes[0].0)
        }
    }
}

fn tenant_model_refused(component: &str, error: &OnnxError) {
    metrics::counter!("pulse_onnx_reload_errors_total", "component" => component.to_owned()).increment(1);
    tracing::error!(%component, %error, "a tenant's model version not loaded: its rows stay with the version they had");
}

fn refuse_all(rows: Vec<Row>, error: &OnnxError, out: &mut Vec<Outcome>) {
    let reason = error.to_string();
    out.extend(rows.into_iter().map(|row| {
        Outcome::Refused(RefusedRow {
            row,
            reason: reason.clone(),
        })
    }));
}

/// Per-version counters (bounded labels: a model has few versions in use).
fn record(component: &str, model: &str, version: &str, rows: usize, failed: bool, latency_us: u64) {
    super::stats::record_batch(model, version, rows, failed, latency_us);
    let labels = [
        ("component", component.to_owned()),
        ("model", model.to_owned()),
        ("version", version.to_owned()),
    ];
    if failed {
        metrics::counter!("pulse_onnx_errors_total", &labels).increment(rows as u64);
    } else {
        metrics::counter!("pulse_onnx_predictions_total", &labels).increment(rows as u64);
        metrics::counter!("pulse_onnx_batches_total", &labels).increment(1);
        metrics::histogram!("pulse_onnx_batch_seconds", &labels).record(latency_us as f64 / 1e6);
    }
}

/// A stable 64-bit hash (FNV-1a, then mixed) of a row's `key` columns: the same key
/// gets the same variant in every run, process and worker.
pub fn key_hash(row: &Row, key: &[String]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in key {
        let text = match row.get(name) {
            Some(Value::Str(s)) => s.to_string(),
            Some(Value::Null) | None => String::new(),
            Some(other) => serde_json::to_string(other).unwrap_or_default(),
        };
        for byte in text.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // FNV alone leaves the high bits of short, similar keys (`key-1`, `key-2`)
    // poorly spread; the finaliser of MurmurHash3 mixes every bit into them.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The variant a key hash falls in, by cumulative weight.
pub fn pick_variant(weights: &[f64], hash: u64) -> usize {
    let total: f64 = weights.iter().sum();
    // The top 53 bits as a fraction in [0, 1).
    let point = (hash >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut cumulative = 0.0;
    for (i, weight) in weights.iter().enumerate() {
        cumulative += weight;
        if point < cumulative {
            return i;
        }
    }
    weights.len() - 1
}

/// Loads the sessions of `plan`: one slot per variant or member (the single
/// model: one slot following its active version).
///
/// # Errors
/// [`OnnxError`] when a model or version is missing, does not load, or takes
/// another number of features than `features`.
fn load_slots(registry: &ModelRegistry, plan: &ModelPlan, features: &[String]) -> Result<Vec<Slot>, OnnxError> {
    let wanted: Vec<(String, Option<String>, f64)> = match plan {
        ModelPlan::Single { model, variants } if variants.is_empty() => vec![(model.clone(), None, 1.0)],
        ModelPlan::Single { model, variants } => variants
            .iter()
            .map(|v| (model.clone(), Some(v.version.clone()), v.weight))
            .collect(),
        ModelPlan::Ensemble { members, .. } => members
            .iter()
            .map(|m| (m.model.clone(), m.version.clone(), m.weight))
            .collect(),
    };
    wanted
        .into_iter()
        .map(|(model, pinned, weight)| {
            let version = match &pinned {
                Some(version) => version.clone(),
                None => registry.active_version(None, &model)?,
            };
            let session = load_session(registry, &model, &version, features.len())?;
            Ok(Slot {
                model,
                pinned,
                weight,
                session,
            })
        })
        .collect()
}

/// Loads one version, checking it takes `width` features.
pub(crate) fn load_session(
    registry: &ModelRegistry,
    model: &str,
    version: &str,
    width: usize,
) -> Result<ModelSession, OnnxError> {
    let found = registry.version(None, model, version)?;
    if found.metadata.features.len() != width {
        return Err(OnnxError::Model {
            model: model.to_owned(),
            version: version.to_owned(),
            message: format!(
                "it takes {} features ({}), the operator gives {width}",
                found.metadata.features.len(),
                found.metadata.features.join(", ")
            ),
        });
    }
    ModelSession::load(model, version, &found.dir, found.metadata)
}

/// Polls the registry for new active versions of the slots that follow one,
/// and loads them off the worker.
struct ReloadWatcher {
    component: String,
    registry: ModelRegistry,
    features: usize,
    /// (slot, model, version it runs).
    following: Vec<(usize, String, String)>,
    /// The tenants' own versions of the model, when it has no variants.
    tenants: Option<TenantModels>,
    interval: Duration,
    /// Gone when the scorer is dropped: the thread then ends.
    alive: Weak<()>,
}

impl ReloadWatcher {
    fn start(mut self) -> mpsc::Receiver<Reload> {
        let (sender, receiver) = mpsc::channel();
        let (name, component) = (format!("onnx-reload-{}", self.component), self.component.clone());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            while self.alive.strong_count() > 0 {
                std::thread::sleep(self.interval);
                for (slot, model, running) in &mut self.following {
                    let Ok(active) = self.registry.active_version(None, model) else {
                        continue;
                    };
                    if active == *running {
                        continue;
                    }
                    match load_session(&self.registry, model, &active, self.features) {
                        Ok(session) => {
                            *running = active;
                            if sender.send(Reload::Slot(*slot, session)).is_err() {
                                return;
                            }
                        }
                        Err(error) => {
                            // The running version stays; a version that does not load
                            // is not tried again (versions are immutable), the next one is.
                            metrics::counter!("pulse_onnx_reload_errors_total", "component" => self.component.clone())
                                .increment(1);
                            tracing::error!(component = %self.component, %error, "new model version not loaded");
                            *running = active;
                        }
                    }
                }
                if let Some(tenants) = &mut self.tenants {
                    for (tenant, loaded) in tenants.changed(&self.registry) {
                        match loaded {
                            Ok(session) => {
                                if sender.send(Reload::Tenant(tenant, session)).is_err() {
                                    return;
                                }
                            }
                            Err(error) => tenant_model_refused(&self.component, &error),
                        }
                    }
                }
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%component, %error, "no reload thread: models stay at their version");
        }
        receiver
    }
}
