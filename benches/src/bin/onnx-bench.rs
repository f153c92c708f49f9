//! Scores one ONNX model version with pulse's `ModelSession` in batches of a
//! given size, and prints rows/s and the p50/p99 latency of a batch — the Rust
//! side of the ONNX benchmark; `benches/onnx/onnxruntime_python.py` is the same
//! loop in onnxruntime-Python (see `benches/README.md`, section ONNX).
//!
//! ```text
//! ORT_DYLIB_PATH=… onnx-bench MODEL_VERSION_DIR BATCH ROWS
//! ```
//!
//! The inputs are the same for both programs: row `i`, feature `j` is
//! `10 + (i * 7 + j * 13) % 80`, as `f32`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use pulse_operators::onnx::{ModelMetadata, ModelSession};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, batch, rows] = args.as_slice() else {
        eprintln!("usage: onnx-bench MODEL_VERSION_DIR BATCH ROWS");
        return ExitCode::from(2);
    };
    match run(PathBuf::from(dir), batch, rows) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("onnx-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: PathBuf, batch: &str, rows: &str) -> Result<String, String> {
    let batch: usize = batch.parse().map_err(|_| format!("BATCH `{batch}` is not a number"))?;
    let rows: usize = rows.parse().map_err(|_| format!("ROWS `{rows}` is not a number"))?;
    if batch == 0 || rows < batch {
        return Err("BATCH must be at least 1 and at most ROWS".into());
    }
    let text = std::fs::read_to_string(dir.join("model.toml")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let metadata: ModelMetadata = toml::from_str(&text).map_err(|e| e.to_string())?;
    let width = metadata.features.len();
    let mut session = ModelSession::load("bench", "1", &dir, metadata).map_err(|e| e.to_string())?;
    let input: Vec<f32> = (0..batch * width)
        .map(|k| {
            let (i, j) = (k / width, k % width);
            10.0 + ((i * 7 + j * 13) % 80) as f32
        })
        .collect();
    let batches = rows / batch;
    let mut latencies_us: Vec<f64> = Vec::with_capacity(batches);
    let started = Instant::now();
    for _ in 0..batches {
        let before = Instant::now();
        let outputs = session.predict(input.clone(), batch).map_err(|e| e.to_string())?;
        latencies_us.push(before.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(outputs);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_by(f64::total_cmp);
    let quantile = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q).round() as usize];
    Ok(format!(
        "{{\"runtime\":\"pulse\",\"batch\":{batch},\"rows\":{},\"rows_per_s\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        batches * batch,
        (batches * batch) as f64 / elapsed,
        quantile(0.5),
        quantile(0.99)
    ))
}
