//! The model registry: a directory of models, each a directory of immutable
//! versions, each version a `model.onnx` with its `model.toml`.
//!
//! ```text
//! models/                       (ModelRegistry::new(root))
//!   linear/                     a global model
//!     1/model.onnx, model.toml
//!     2/model.onnx, model.toml
//!     ACTIVE                    optional: the active version ("1"); else the newest
//!   tenants/acme/churn/3/…      a model of tenant `acme` only
//! ```
//!
//! Versions are compared as numbers when both are (`10` after `9`), else as
//! text. A version directory appears whole: writers put it in a temporary
//! directory whose name starts with `.` and rename it into place, and
//! directories starting with `.` are never read. [`ModelRegistry::activate`]
//! writes `ACTIVE` the same way (temporary file, rename).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::OnnxError;

/// What a model version's `model.toml` says.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMetadata {
    /// What the model does.
    #[serde(default)]
    pub description: String,
    /// When the version was made (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// The name of the model's float input tensor, of shape `[N, features]`.
    pub input: String,
    /// The input features in tensor order: row columns (`avg`, `p95`) or
    /// one-hot tests of a key column (`labels.region=eu`: 1 when equal, else 0).
    pub features: Vec<String>,
    /// The outputs read, each becoming one column of the prediction rows.
    pub outputs: Vec<OutputSpec>,
}

/// One output of a model and the row column it fills.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The output tensor's name in the model.
    pub name: String,
    /// The column of prediction rows it fills.
    pub column: String,
    /// What it means.
    pub kind: OutputKind,
    /// For a `[N, k]` output, which of its `k` columns (default: the last).
    #[serde(default)]
    pub index: Option<usize>,
}

/// The meaning of a model output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A predicted quantity (float).
    Regression,
    /// A class probability (float).
    Probability,
    /// An anomaly or decision score (float).
    Score,
    /// A class label (int64 tensor).
    Label,
}

/// One version of a model as found on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelVersion {
    /// The model's id.
    pub model: String,
    /// The version's name (its directory's).
    pub version: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its `model.toml`.
    pub metadata: ModelMetadata,
}

/// A model registry rooted at a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRegistry {
    root: PathBuf,
}

/// The file naming a model's active version.
pub const ACTIVE_FILE: &str = "ACTIVE";

impl ModelRegistry {
    /// The registry under `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of model `id`: the tenant's own model when `tenant` has
    /// one of that id, else the global one.
    fn model_dir(&self, tenant: Option<&str>, id: &str) -> Result<PathBuf, OnnxError> {
        check_name("model id", id)?;
        if let Some(tenant) = tenant {
            check_name("tenant", tenant)?;
            let own = self.root.join("tenants").join(tenant).join(id);
            if own.is_dir() {
                return Ok(own);
            }
        }
        let global = self.root.join(id);
        if id == "tenants" || !global.is_dir() {
            return Err(OnnxError::UnknownModel {
                model: id.to_owned(),
                root: self.root.clone(),
            });
        }
        Ok(global)
    }

    /// Whether model `id` of `tenant` is the tenant's own (not a global one).
    pub fn is_tenant_model(&self, tenant: &str, id: &str) -> bool {
        check_name("tenant", tenant).is_ok()
            && check_name("model id", id).is_ok()
            && self.root.join("tenants").join(tenant).join(id).is_dir()
    }

    /// The tenants that have their own model `id`, sorted.
    pub fn tenants_with_model(&self, id: &str) -> Vec<String> {
        let mut tenants = subdirectories(&self.root.join("tenants"));
        tenants.retain(|tenant| self.is_tenant_model(tenant, id));
        tenants.sort();
        tenants
    }

    /// The ids of the models `tenant` may use (global ones and its own), sorted.
    pub fn models(&self, tenant: Option<&str>) -> Vec<String> {
        let mut ids = subdirectories(&self.root);
        ids.retain(|id| id != "tenants");
        if let Some(tenant) = tenant.filter(|t| check_name("tenant", t).is_ok()) {
            ids.extend(subdirectories(&self.root.join("tenants").join(tenant)));
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// The versions of model `id`, oldest first.
    ///
    /// # Errors
    /// [`OnnxError::UnknownModel`] when there is no such model.
    pub fn versions(&self, tenant: Option<&str>, id: &str) -> Result<Vec<String>, OnnxError> {
        let dir = self.model_dir(tenant, id)?;
        let mut versions = subdirectories(&dir);
        versions.retain(|v| dir.join(v).join("model.onnx").is_file());
        versions.sort_by(|a, b| compare_versions(a, b));
        Ok(versions)
    }

    /// The active version of model `id`: the one its `ACTIVE` file names,
    /// else the newest.
    ///
    /// # Errors
    /// [`OnnxError::UnknownModel`] without such a model; [`OnnxError::Registry`]
    /// when it has no version or `ACTIVE` names a missing one.
    pub fn active_version(&self, tenant: Option<&str>, id: &str) -> Result<String, OnnxError> {
        let dir = self.model_dir(tenant, id)?;
        let versions = self.versions(tenant, id)?;
        let pointer = dir.join(ACTIVE_FILE);
        if let Ok(text) = std::fs::read_to_string(&pointer) {
            let named = text.trim();
            return versions.iter().find(|v| *v == named).cloned().ok_or_else(|| {
                OnnxError::Registry(format!(
                    "{} names version `{named}`, which model `{id}` does not have (it has {})",
                    pointer.display(),
                    versions.join(", ")
                ))
            });
        }
        versions
            .last()
            .cloned()
            .ok_or_else(|| OnnxError::Registry(format!("model `{id}` has no version in {}", dir.display())))
    }

    /// Version `version` of model `id`, with its metadata.
    ///
    /// # Errors
    /// [`OnnxError::UnknownModel`], or [`OnnxError::Registry`] when the version
    /// is missing or its `model.toml` does not read.
    pub fn version(&self, tenant: Option<&str>, id: &str, version: &str) -> Result<ModelVersion, OnnxError> {
        check_name("version", version)?;
        let dir = self.model_dir(tenant, id)?.join(version);
        if !dir.join("model.onnx").is_file() {
            let versions = self.versions(tenant, id)?;
            return Err(OnnxError::Registry(format!(
                "model `{id}` has no version `{version}` (it has {})",
                versions.join(", ")
            )));
        }
        let file = dir.join("model.toml");
        let text = std::fs::read_to_string(&file)
            .map_err(|error| OnnxError::Registry(format!("{}: {error}", file.display())))?;
        let metadata: ModelMetadata =
            toml::from_str(&text).map_err(|error| OnnxError::Registry(format!("{}: {error}", file.display())))?;
        if metadata.features.is_empty() || metadata.outputs.is_empty() {
            return Err(OnnxError::Registry(format!(
                "{}: a model needs at least one feature and one output",
                file.display()
            )));
        }
        Ok(ModelVersion {
            model: id.to_owned(),
            version: version.to_owned(),
            dir,
            metadata,
        })
    }

    /// Makes `version` model `id`'s active version (its `ACTIVE` file is
    /// replaced atomically).
    ///
    /// # Errors
    /// As [`ModelRegistry::version`] when there is no such version;
    /// [`OnnxError::Registry`] when the file cannot be written.
    pub fn activate(&self, tenant: Option<&str>, id: &str, version: &str) -> Result<(), OnnxError> {
        let found = self.version(tenant, id, version)?;
        let dir = found.dir.parent().expect("a version directory is inside its model's");
        let temporary = dir.join(format!(".{ACTIVE_FILE}.{}", std::process::id()));
        let write = std::fs::write(&temporary, format!("{version}\n"))
            .and_then(|()| std::fs::rename(&temporary, dir.join(ACTIVE_FILE)));
        write.map_err(|error| OnnxError::Registry(format!("activating {id} {version}: {error}")))
    }
}

impl ModelRegistry {
    /// Adds a new version of model `id` (the tenant's own with `tenant`, else
    /// a global one) and returns its name: one past the highest numeric
    /// version. The files are written to a hidden temporary directory,
    /// `check(dir, version)` runs on it (e.g. loading it in ONNX Runtime), and
    /// only then is it renamed into place, so readers (the operator's hot
    /// reload, the predict API) see the whole version or none. The version
    /// becomes active unless the model's `ACTIVE` file pins another.
    ///
    /// # Errors
    /// [`OnnxError::Registry`] on a bad name or a file that cannot be
    /// written; whatever `check` returns (nothing is left behind then).
    pub fn publish(
        &self,
        tenant: Option<&str>,
        id: &str,
        onnx: &[u8],
        metadata: &ModelMetadata,
        check: impl FnOnce(&Path, &str) -> Result<(), OnnxError>,
    ) -> Result<String, OnnxError> {
        check_name("model id", id)?;
        let dir = match tenant {
            Some(tenant) => {
                check_name("tenant", tenant)?;
                self.root.join("tenants").join(tenant).join(id)
            }
            None if id == "tenants" => return Err(OnnxError::Registry("`tenants` is not a model id".into())),
            None => self.root.join(id),
        };
        let io =
            |what: &str, error: std::io::Error| OnnxError::Registry(format!("{what} in {}: {error}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(|e| io("creating the model directory", e))?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = dir.join(format!(".new-{}-{serial}", std::process::id()));
        let written = write_version(&temporary, onnx, metadata, &io).and_then(|()| {
            let first = next_version(&dir);
            check(&temporary, &first.to_string())?;
            // A concurrent writer may take the number first: take the next one.
            for version in (first..).take(64) {
                let target = dir.join(version.to_string());
                if !target.exists() && std::fs::rename(&temporary, &target).is_ok() {
                    return Ok(version.to_string());
                }
            }
            Err(OnnxError::Registry(format!(
                "no free version number in {}",
                dir.display()
            )))
        });
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&temporary);
        }
        written
    }
}

fn write_version(
    dir: &Path,
    onnx: &[u8],
    metadata: &ModelMetadata,
    io: &dyn Fn(&str, std::io::Error) -> OnnxError,
) -> Result<(), OnnxError> {
    let toml = toml::to_string(metadata).map_err(|e| OnnxError::Registry(format!("model.toml: {e}")))?;
    std::fs::create_dir(dir).map_err(|e| io("creating a version", e))?;
    std::fs::write(dir.join("model.onnx"), onnx).map_err(|e| io("writing model.onnx", e))?;
    std::fs::write(dir.join("model.toml"), toml).map_err(|e| io("writing model.toml", e))
}

/// One past the highest numeric version in a model directory (1 for none).
fn next_version(dir: &Path) -> u64 {
    subdirectories(dir)
        .iter()
        .filter_map(|v| v.parse::<u64>().ok())
        .max()
        .map_or(1, |v| v + 1)
}

/// Orders versions as numbers when both are, else as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Names of the visible subdirectories of `dir` (none when it does not exist).
fn subdirectories(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// Refuses names that would leave their directory (`..`, `a/b`) or be hidden.
fn check_name(what: &str, name: &str) -> Result<(), OnnxError> {
    let fine = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(())
    } else {
        Err(OnnxError::Registry(format!(
            "{what} `{name}` is not a name: use letters, digits, `-`, `_` and `.`, not starting with `.`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_numbers_then_text() {
        let mut versions = vec!["10", "9", "b", "2", "a"];
        versions.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(versions, ["2", "9", "10", "a", "b"]);
    }

    #[test]
    fn published_versions_appear_whole_and_numbered() {
        let root = std::env::temp_dir().join(format!("pulse-registry-publish-{}", std::process::id()));
        let registry = ModelRegistry::new(&root);
        let metadata = ModelMetadata {
            description: "test".into(),
            created_at: String::new(),
            input: "X".into(),
            features: vec!["avg".into()],
            outputs: vec![OutputSpec {
                name: "y".into(),
                column: "y".into(),
                kind: OutputKind::Regression,
                index: None,
            }],
        };
        let refuse = |_: &Path, _: &str| Err(OnnxError::Registry("refused".into()));
        assert!(registry.publish(Some("acme"), "m", b"x", &metadata, refuse).is_err());
        assert!(
            registry.versions(Some("acme"), "m").unwrap().is_empty(),
            "a refused version leaves nothing"
        );
        let accept = |_: &Path, _: &str| Ok(());
        assert_eq!(
            registry.publish(Some("acme"), "m", b"x", &metadata, accept).unwrap(),
            "1"
        );
        assert_eq!(
            registry.publish(Some("acme"), "m", b"x", &metadata, accept).unwrap(),
            "2"
        );
        assert_eq!(registry.version(Some("acme"), "m", "2").unwrap().metadata, metadata);
        assert_eq!(registry.active_version(Some("acme"), "m").unwrap(), "2");
        assert!(
            registry.versions(Some("other"), "m").is_err(),
            "another tenant does not see it"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn names_that_leave_the_registry_are_refused() {
        let registry = ModelRegistry::new("/nonexistent");
        for bad in ["..", "../etc", "a/b", "", ".hidden"] {
            assert!(
                matches!(registry.versions(None, bad), Err(OnnxError::Registry(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            registry.versions(None, "missing"),
            Err(OnnxError::UnknownModel { .. })
        ));
    }
}
