//! Trains the anomaly operator's native Isolation Forest and writes it as the
//! fused ONNX model `POST /api/v1/ml/train` registers (one `ai.onnx.ml`
//! `TreeEnsembleRegressor` plus the score's normalisation): the model of the
//! "fused Isolation Forest" rows of the ONNX benchmark (`benches/README.md`).
//!
//! ```text
//! onnx-export-forest OUT_DIR      # writes OUT_DIR/model.onnx and model.toml
//! ```
//!
//! The training data follow the fixtures' (`make_fixtures.py`): 400 windows
//! whose `avg` is uniform in [10, 90), `p95` = avg + U[0, 8), `max` = avg +
//! U[8, 20); 50 trees of 256 points, as scikit-learn's defaults for the
//! fixture forest.

use std::path::PathBuf;
use std::process::ExitCode;

use pulse_operators::anomaly::SplitMix64;
use pulse_operators::onnx::train::{self, ModelKind};

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: onnx-export-forest OUT_DIR");
        return ExitCode::from(2);
    };
    let mut rng = SplitMix64::new(7);
    let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.next_f64();
    let rows: Vec<Vec<f64>> = (0..400)
        .map(|_| {
            let level = uniform(10.0, 90.0);
            vec![level, level + uniform(0.0, 8.0), level + uniform(8.0, 20.0)]
        })
        .collect();
    let features = ["avg", "p95", "max"].map(String::from).to_vec();
    let kind = ModelKind::IsolationForest {
        trees: 50,
        sample_size: 256,
        seed: 0,
    };
    let description = "native isolation forest (50 trees), fused into one TreeEnsembleRegressor";
    let trained = match train::train(&kind, &features, &rows, &[], description, "") {
        Ok(trained) => trained,
        Err(error) => {
            eprintln!("onnx-export-forest: {error}");
            return ExitCode::FAILURE;
        }
    };
    let written = toml::to_string(&trained.metadata)
        .map_err(|e| e.to_string())
        .and_then(|metadata| {
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("model.onnx"), &trained.onnx))
                .and_then(|()| std::fs::write(dir.join("model.toml"), metadata))
                .map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("onnx-export-forest: {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
