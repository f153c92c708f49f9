//! Models trained in Rust and written as ONNX (`onnx::train`, `onnx::export`)
//! score in ONNX Runtime as they do natively: a ridge regression and the
//! anomaly operator's Isolation Forest, published into a registry (checked
//! by loading before the rename), read back and run at batch sizes 1 and 257.
//!
//! Needs ONNX Runtime (`ORT_DYLIB_PATH`): skipped loudly without it, a
//! failure under `CI=true`.

use std::path::Path;

use pulse_operators::anomaly::SplitMix64;
use pulse_operators::onnx::train::{self, ModelKind, NativeModel};
use pulse_operators::onnx::{ModelRegistry, ModelSession, OutputValues};

fn runtime_present() -> bool {
    match pulse_operators::onnx::runtime::environment() {
        Ok(_) => true,
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and {error}"),
        Err(error) => {
            eprintln!("\n*** SKIPPED: {error} ***\n");
            false
        }
    }
}

/// Window-like rows: `count`, `avg`, `max` (max tracks avg), and a target.
fn rows(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut rng = SplitMix64::new(seed);
    let x: Vec<Vec<f64>> = (0..n)
        .map(|_| {
            let avg = 40.0 + 20.0 * rng.next_f64();
            vec![
                (100.0 + 50.0 * rng.next_f64()).round(),
                avg,
                avg + 10.0 * rng.next_f64(),
            ]
        })
        .collect();
    let y = x
        .iter()
        .map(|r| 0.01 * r[0] + 1.5 * r[1] - 0.25 * r[2] + 2.0 + rng.next_f64() - 0.5)
        .collect();
    (x, y)
}

/// Publishes `kind` trained on the rows into `root`, then compares ONNX
/// Runtime's outputs with the native model's on the 32-bit features.
fn check_round_trip(root: &Path, kind: ModelKind, tolerance: f64) {
    let features: Vec<String> = ["count", "avg", "max"].map(String::from).to_vec();
    let (x, y) = rows(500, 11);
    let trained = train::train(&kind, &features, &x, &y, "test", "2026-12-07T00:00:00Z").unwrap();
    let registry = ModelRegistry::new(root);
    let load = |dir: &Path, version: &str| ModelSession::load("m", version, dir, trained.metadata.clone()).map(drop);
    let version = registry
        .publish(Some("acme"), "m", &trained.onnx, &trained.metadata, load)
        .unwrap();
    let found = registry.version(Some("acme"), "m", &version).unwrap();
    assert_eq!(found.metadata, trained.metadata);
    let mut session = ModelSession::load("m", &version, &found.dir, found.metadata).unwrap();
    // Points inside the data, and outliers far outside it.
    let (mut probe, _) = rows(256, 99);
    probe.push(vec![1000.0, -50.0, 900.0]);
    for batch in [1, probe.len()] {
        for chunk in probe.chunks(batch) {
            let flat: Vec<f32> = chunk.iter().flatten().map(|v| *v as f32).collect();
            let outputs = session.predict(flat, chunk.len()).unwrap();
            let OutputValues::Float(got) = &outputs[0] else {
                panic!("a float output")
            };
            for (row, got) in chunk.iter().zip(got) {
                let as_f32: Vec<f64> = row.iter().map(|v| f64::from(*v as f32)).collect();
                let want = trained.native.predict(&as_f32);
                assert!(
                    (got - want).abs() <= tolerance * want.abs().max(1.0),
                    "{kind:?} at {row:?}: ONNX Runtime {got}, native {want}"
                );
            }
        }
    }
}

#[test]
fn a_trained_linear_regression_scores_in_onnx_runtime_as_natively() {
    if !runtime_present() {
        return;
    }
    let root = std::env::temp_dir().join(format!("pulse-train-linear-{}", std::process::id()));
    let kind = ModelKind::LinearRegression {
        target: "next_avg".into(),
        ridge: 0.0,
    };
    check_round_trip(&root, kind, 1e-5);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_trained_isolation_forest_scores_in_onnx_runtime_as_natively() {
    if !runtime_present() {
        return;
    }
    let root = std::env::temp_dir().join(format!("pulse-train-forest-{}", std::process::id()));
    let kind = ModelKind::IsolationForest {
        trees: 100,
        sample_size: 256,
        seed: 7,
    };
    check_round_trip(&root, kind.clone(), 1e-5);
    // The outlier scores as one, and above every inlier.
    let (x, y) = rows(500, 11);
    let features: Vec<String> = ["count", "avg", "max"].map(String::from).to_vec();
    let NativeModel::Forest(forest) = train::train(&kind, &features, &x, &y, "", "").unwrap().native else {
        panic!("a forest")
    };
    let outlier = forest.score(&[1000.0, -50.0, 900.0]);
    let most_inlying = x.iter().map(|p| forest.score(p)).fold(0.0, f64::max);
    assert!(outlier > 0.6 && outlier > most_inlying, "{outlier} vs {most_inlying}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_version_that_does_not_load_is_never_published() {
    if !runtime_present() {
        return;
    }
    let root = std::env::temp_dir().join(format!("pulse-train-refused-{}", std::process::id()));
    let features: Vec<String> = ["count", "avg", "max"].map(String::from).to_vec();
    let (x, y) = rows(100, 3);
    let kind = ModelKind::LinearRegression {
        target: "y".into(),
        ridge: 0.1,
    };
    let mut trained = train::train(&kind, &features, &x, &y, "", "").unwrap();
    trained.metadata.outputs[0].name = "no_such_output".into();
    let registry = ModelRegistry::new(&root);
    let load = |dir: &Path, version: &str| ModelSession::load("m", version, dir, trained.metadata.clone()).map(drop);
    let error = registry
        .publish(None, "m", &trained.onnx, &trained.metadata, load)
        .unwrap_err();
    assert!(error.to_string().contains("no_such_output"), "{error}");
    assert!(registry.versions(None, "m").unwrap().is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}
