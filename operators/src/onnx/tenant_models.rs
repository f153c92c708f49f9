//! Tenants' own versions of an operator's model: a row whose `tenant` has a
//! model of the operator's id in the registry (`tenants/<tenant>/<id>/`, e.g.
//! one trained through `POST /api/v1/ml/train`) is scored by that model's
//! active version, any other row by the global model, as the predict API
//! resolves a model for a tenant.
//!
//! A tenant's version must take the operator's features (the same names in
//! the same order) and give outputs of the same kinds as the global model's:
//! its outputs fill the operator's output columns by position. A version
//! that does not is not loaded (logged and counted), and the tenant's rows
//! stay with the version they had (the global model at first).

use std::collections::HashMap;

use super::OnnxError;
use super::registry::{ModelRegistry, OutputKind};
use super::runtime::ModelSession;

/// What a tenant's model must match, and which versions run per tenant.
#[derive(Clone, Debug)]
pub(crate) struct TenantModels {
    /// The operator's model id.
    pub model: String,
    /// The operator's features, in order.
    pub features: Vec<String>,
    /// The kinds of the global model's outputs, in order.
    pub outputs: Vec<OutputKind>,
    /// The version tried last per tenant.
    pub tried: HashMap<String, String>,
}

impl TenantModels {
    /// The tenants whose active version changed since the last call, each with
    /// its loaded session (or why it did not load; it is not tried again).
    pub fn changed(&mut self, registry: &ModelRegistry) -> Vec<(String, Result<ModelSession, OnnxError>)> {
        let mut changed = Vec::new();
        for tenant in registry.tenants_with_model(&self.model) {
            let Ok(active) = registry.active_version(Some(&tenant), &self.model) else {
                continue;
            };
            if self.tried.get(&tenant) == Some(&active) {
                continue;
            }
            let loaded = self.load(registry, &tenant, &active);
            self.tried.insert(tenant.clone(), active);
            changed.push((tenant, loaded));
        }
        changed
    }

    fn load(&self, registry: &ModelRegistry, tenant: &str, version: &str) -> Result<ModelSession, OnnxError> {
        let found = registry.version(Some(tenant), &self.model, version)?;
        let bad = |message: String| OnnxError::Model {
            model: format!("{}` of tenant `{tenant}", self.model),
            version: version.to_owned(),
            message,
        };
        if found.metadata.features != self.features {
            return Err(bad(format!(
                "it takes features {}, the operator gives {}",
                found.metadata.features.join(", "),
                self.features.join(", ")
            )));
        }
        let kinds: Vec<OutputKind> = found.metadata.outputs.iter().map(|o| o.kind).collect();
        if kinds != self.outputs {
            return Err(bad(format!(
                "its outputs are {kinds:?}, the global model's {:?}: they fill the same columns",
                self.outputs
            )));
        }
        ModelSession::load(&self.model, version, &found.dir, found.metadata)
    }
}
