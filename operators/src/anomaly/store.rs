//! Persisted model versions: a directory of JSON files, one per key and
//! version, each with its metadata (trained_at, points, key, parameters).
//!
//! Files are written to a temporary name and renamed, so a reader never sees
//! a half-written model; on start the operator reloads each key's latest.

use std::path::{Path, PathBuf};

use super::forest_detector::ModelVersion;

/// A model file that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file that is not a model.
    #[error("{path}: not a model file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A directory of versioned model files: `<key>.v<version>.json`.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::{ModelStore, SeriesDetector, AnomalyConfig};
///
/// let dir = std::env::temp_dir().join(format!("pulse-doc-models-{}", std::process::id()));
/// let store = ModelStore::new(&dir);
/// let mut detector = SeriesDetector::new("cpu", AnomalyConfig::default());
/// for i in 0..500i64 {
///     detector.update(i * 1000, (i % 10) as f64).unwrap();
/// }
/// let model = detector.model().unwrap();
/// store.save(model).unwrap();
/// assert_eq!(store.load_latest("cpu").unwrap().as_ref(), Some(model.as_ref()));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    /// A store in `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file a key's version lives in; the key is escaped to a safe file name.
    pub fn path(&self, key: &str, version: u64) -> PathBuf {
        self.dir.join(format!("{}.v{version:010}.json", escape(key)))
    }

    /// Writes a model version atomically (temp file, then rename).
    pub fn save(&self, model: &ModelVersion) -> Result<PathBuf, StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.path(&model.key, model.version);
        let temp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(model).map_err(|e| StoreError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&temp, json).map_err(io(&temp))?;
        std::fs::rename(&temp, &path).map_err(io(&path))?;
        Ok(path)
    }

    /// Every version of a key, oldest first.
    pub fn versions(&self, key: &str) -> Result<Vec<u64>, StoreError> {
        let prefix = format!("{}.v", escape(key));
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut versions: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_prefix(&prefix)?.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// Reads one version.
    pub fn load(&self, key: &str, version: u64) -> Result<ModelVersion, StoreError> {
        let path = self.path(key, version);
        let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Format {
            path,
            reason: e.to_string(),
        })
    }

    /// The newest version of a key, if any.
    pub fn load_latest(&self, key: &str) -> Result<Option<ModelVersion>, StoreError> {
        match self.versions(key)?.last() {
            Some(&version) => self.load(key, version).map(Some),
            None => Ok(None),
        }
    }
}

/// Letters, digits, `-` and `_` stay; every other byte becomes `%XX`.
fn escape(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::anomaly::{AnomalyConfig, SeriesDetector};

    #[test]
    fn a_reloaded_model_scores_as_the_one_that_was_saved() {
        let dir = std::env::temp_dir().join(format!("pulse-models-{}", std::process::id()));
        let store = ModelStore::new(&dir);
        let key = "acme/host 1:cpu";
        let mut first = SeriesDetector::new(key, AnomalyConfig::default());
        let points: Vec<(i64, f64)> = (0..3000i64).map(|i| (i * 60_000, ((i % 60) as f64).sqrt())).collect();
        for &(t, v) in &points[..2000] {
            first.update(t, v).unwrap();
            if let Some(model) = first.model()
                && store.versions(key).unwrap().last() != Some(&model.version)
            {
                store.save(model).unwrap();
            }
        }
        assert_eq!(store.versions(key).unwrap(), vec![1, 2]);
        let latest = store.load_latest(key).unwrap().unwrap();
        assert_eq!(&latest, first.model().unwrap().as_ref());
        assert_eq!((latest.key.as_str(), latest.points), (key, latest.points));
        // A restarted detector with the reloaded model keeps the same schedule and forest.
        let mut second = SeriesDetector::new(key, AnomalyConfig::default());
        second.install(Arc::new(latest));
        assert_eq!(second.model(), first.model());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
