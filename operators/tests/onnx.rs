//! The `onnx` operator against the fixture models of `tests/fixtures/onnx`:
//! predictions equal onnxruntime-Python's (`expected.json`), a new version is
//! hot-swapped mid-stream with no row lost or scored twice, A/B variants stay
//! with their key, ensembles combine as declared, with `max_delay` a small
//! batch waits for more rows and is flushed by time, and a tenant's own model
//! scores that tenant's rows (the global one the others').
//!
//! These need ONNX Runtime (`ORT_DYLIB_PATH`, installed by
//! `scripts/onnxruntime.sh`): without it they skip with a loud message, and
//! fail under `CI=true`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
use pulse_operators::onnx::{
    Combine, EnsembleMember, MissingPolicy, ModelPlan, ModelRegistry, ModelSession, OnnxExt, OnnxStreamConfig,
    OutputValues, Prediction, RefusedRow, Variant,
};
use serde_json::Value as Json;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Input, Inspect, Probe};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// Whether ONNX Runtime is there; a failure under `CI=true` when it is not.
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

/// One case of expected.json: a model version, its inputs and onnxruntime-Python's outputs.
struct Case {
    model: String,
    version: String,
    inputs: Vec<[f32; 3]>,
    outputs: BTreeMap<String, Json>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let json: Json = serde_json::from_str(&text).unwrap();
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| Case {
            model: case["model"].as_str().unwrap().to_owned(),
            version: case["version"].as_str().unwrap().to_owned(),
            inputs: case["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    let v: Vec<f32> = row
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect();
                    [v[0], v[1], v[2]]
                })
                .collect(),
            outputs: case["outputs"].as_object().unwrap().clone().into_iter().collect(),
        })
        .collect()
}

/// Column `index` (default last) of output `name` of a case, row by row.
fn expected_column(case: &Case, name: &str, index: Option<usize>) -> Vec<f64> {
    case.outputs[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| match row {
            Json::Array(columns) => columns[index.unwrap_or(columns.len() - 1)].as_f64().unwrap(),
            scalar => scalar.as_f64().unwrap(),
        })
        .collect()
}

/// Equal to within the last bit or two of an `f32`.
fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{what}: {g} is not {w}");
    }
}

/// The float a prediction's first output holds.
fn first_output(prediction: &Prediction) -> f64 {
    prediction.outputs[0].as_f64().expect("a number")
}

fn expected(model: &str, version: &str) -> Vec<f64> {
    let cases = cases();
    let case = cases.iter().find(|c| c.model == model && c.version == version).unwrap();
    let registry = ModelRegistry::new(fixtures().join("models"));
    let spec = &registry.version(None, model, version).unwrap().metadata.outputs[0];
    expected_column(case, &spec.name, spec.index)
}

#[test]
fn predictions_equal_onnxruntime_python_for_every_fixture_and_batch_size() {
    if !runtime_present() {
        return;
    }
    let registry = ModelRegistry::new(fixtures().join("models"));
    let cases = cases();
    assert_eq!(cases.len(), 5);
    for case in &cases {
        let found = registry.version(None, &case.model, &case.version).unwrap();
        let mut session = ModelSession::load(&case.model, &case.version, &found.dir, found.metadata.clone()).unwrap();
        // The whole batch at once, and one row at a time: the same numbers.
        for batch in [case.inputs.len(), 1] {
            let mut got: Vec<Vec<f64>> = vec![Vec::new(); found.metadata.outputs.len()];
            for chunk in case.inputs.chunks(batch) {
                let features: Vec<f32> = chunk.iter().flatten().copied().collect();
                let outputs = session.predict(features, chunk.len()).unwrap();
                for (column, output) in got.iter_mut().zip(&outputs) {
                    column.extend((0..chunk.len()).map(|i| output.as_f64(i)));
                }
            }
            for (spec, got) in found.metadata.outputs.iter().zip(&got) {
                let want = expected_column(case, &spec.name, spec.index);
                let what = format!("{} v{} output {} (batch {batch})", case.model, case.version, spec.name);
                if batch == case.inputs.len() {
                    // The batch onnxruntime-Python ran: bit for bit the same.
                    assert_eq!(got, &want, "{what}");
                } else {
                    // ONNX Runtime's kernels for other batch shapes may round differently in the last bit.
                    assert_close(got, &want, &what);
                }
            }
        }
    }
    // Labels come out as integers.
    let found = registry.version(None, "iforest", "1").unwrap();
    let mut session = ModelSession::load("iforest", "1", &found.dir, found.metadata).unwrap();
    let outputs = session.predict(vec![50.0, 55.0, 65.0], 1).unwrap();
    assert!(matches!(&outputs[0], OutputValues::Int(labels) if labels[0] == 1 || labels[0] == -1));
}

#[test]
fn a_model_whose_metadata_names_a_missing_output_does_not_load() {
    if !runtime_present() {
        return;
    }
    let registry = ModelRegistry::new(fixtures().join("models"));
    let mut found = registry.version(None, "linear", "1").unwrap();
    found.metadata.outputs[0].name = "nope".into();
    let error = ModelSession::load("linear", "1", &found.dir, found.metadata).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("names output `nope`, the model has variable"),
        "{error}"
    );
}

fn schema() -> Arc<RowSchema> {
    Arc::new(
        RowSchema::new(vec![
            Column::new("id", ColumnType::Key),
            Column::new("avg", ColumnType::Float).nullable(),
            Column::new("p95", ColumnType::Float),
            Column::new("max", ColumnType::Float),
        ])
        .unwrap(),
    )
}

/// Row `id` with the features of fixture input `input`.
fn row(schema: &Arc<RowSchema>, id: &str, input: [f32; 3]) -> Row {
    let values = vec![
        Value::from(id),
        Value::Float(f64::from(input[0])),
        Value::Float(f64::from(input[1])),
        Value::Float(f64::from(input[2])),
    ];
    Row::new(Arc::clone(schema), values)
}

fn config(registry: &Path, plan: ModelPlan) -> OnnxStreamConfig {
    OnnxStreamConfig {
        registry: ModelRegistry::new(registry),
        plan,
        features: vec!["avg".into(), "p95".into(), "max".into()],
        missing: MissingPolicy::DeadLetter,
        key: vec!["id".into()],
        max_batch: 7,
        max_delay_ms: 0,
        reload_interval_ms: 20,
    }
}

/// A copy of the fixture registry with only the given versions, in a fresh directory.
fn registry_with(versions: &[(&str, &str)], test: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("pulse-onnx-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (model, version) in versions {
        copy_version(&root, model, version);
    }
    root
}

/// Writes a version as a writer should: into a hidden directory, then renamed into place.
fn copy_version(root: &Path, model: &str, version: &str) {
    let from = fixtures().join("models").join(model).join(version);
    let temporary = root.join(model).join(format!(".incoming-{version}"));
    std::fs::create_dir_all(&temporary).unwrap();
    for file in ["model.onnx", "model.toml"] {
        std::fs::copy(from.join(file), temporary.join(file)).unwrap();
    }
    std::fs::rename(&temporary, root.join(model).join(version)).unwrap();
}

/// Runs the operator over rounds of rows; `between(round)` runs after each round
/// is scored, and returns whether to go on. Returns predictions and refusals.
fn run_rounds(
    config: OnnxStreamConfig,
    rounds: usize,
    rows_of: impl Fn(usize) -> Vec<Row> + Send + Sync + 'static,
    between: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> (Vec<(u64, Prediction)>, Vec<RefusedRow>) {
    let (predictions, refused) = timely::execute_directly(move |worker| {
        let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Row>>> = InputHandle::new();
        let probe = ProbeHandle::new();
        let (scored, refused) = worker.dataflow(|scope| {
            let (scored, refused) = scope.input_from(&mut input).score_onnx("predict", &config);
            (scored.probe_with(&probe).capture(), refused.capture())
        });
        for round in 0..rounds {
            for row in rows_of(round) {
                input.send(row);
            }
            input.advance_to(round as u64 + 1);
            while probe.less_than(input.time()) {
                worker.step();
            }
            if !between(round) {
                break;
            }
        }
        input.close();
        while worker.step() {}
        (scored, refused)
    });
    let predictions = predictions
        .try_iter()
        .flat_map(|event| match event {
            Event::Messages(stamp, data) => {
                let time = *stamp.least().expect("messages carry a time");
                data.into_iter().map(|p| (time, p)).collect()
            }
            Event::Progress(_) => Vec::new(),
        })
        .collect();
    let refused = refused
        .try_iter()
        .flat_map(|event| match event {
            Event::Messages(_, data) => data,
            Event::Progress(_) => Vec::new(),
        })
        .collect();
    (predictions, refused)
}

#[test]
fn a_new_version_is_hot_swapped_mid_stream_with_no_row_lost_or_scored_twice() {
    if !runtime_present() {
        return;
    }
    let root = registry_with(&[("linear", "1")], "hot-swap");
    let writer_root = root.clone();
    let inputs: Vec<[f32; 3]> = cases()[0].inputs.clone();
    let rows_inputs = inputs.clone();
    let schema = schema();
    let rows_per_round = 16;
    let swap_round = 3;
    let started = Instant::now();
    let (predictions, refused) = run_rounds(
        config(
            &root,
            ModelPlan::Single {
                model: "linear".into(),
                variants: Vec::new(),
            },
        ),
        400,
        move |round| {
            (0..rows_per_round)
                .map(|i| row(&schema, &format!("{round}-{i}"), rows_inputs[i % rows_inputs.len()]))
                .collect()
        },
        move |round| {
            if round == swap_round {
                copy_version(&writer_root, "linear", "2");
            }
            // Give the watcher time to load version 2, then a few more rounds after it.
            std::thread::sleep(Duration::from_millis(10));
            round < swap_round + 40 && started.elapsed() < Duration::from_secs(60)
        },
    );
    assert!(refused.is_empty(), "{refused:?}");
    let (v1, v2) = (expected("linear", "1"), expected("linear", "2"));
    let mut ids: HashMap<String, &str> = HashMap::new();
    let mut last_v1_round = 0;
    let mut first_v2_round = u64::MAX;
    for (time, prediction) in &predictions {
        let id = prediction.row.get("id").unwrap().as_str().unwrap().to_owned();
        let i: usize = id.split('-').nth(1).unwrap().parse().unwrap();
        let want = if &*prediction.version == "1" { &v1 } else { &v2 };
        assert_close(
            &[first_output(prediction)],
            &[want[i % inputs.len()]],
            &format!("{id} v{}", prediction.version),
        );
        match &*prediction.version {
            "1" => last_v1_round = last_v1_round.max(*time),
            _ => first_v2_round = first_v2_round.min(*time),
        }
        assert!(ids.insert(id.clone(), "").is_none(), "{id} scored twice");
    }
    let rounds = predictions.iter().map(|(t, _)| *t).max().unwrap() + 1;
    assert_eq!(
        ids.len(),
        rounds as usize * rows_per_round,
        "every row of every round scored once"
    );
    assert!(first_v2_round < u64::MAX, "version 2 was never picked up");
    assert!(
        last_v1_round < first_v2_round,
        "v1 until {last_v1_round}, v2 from {first_v2_round}"
    );
    assert!(first_v2_round > swap_round as u64, "v2 appeared before it was written");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn ab_variants_split_keys_stably_and_say_which_version_scored() {
    if !runtime_present() {
        return;
    }
    let root = fixtures().join("models");
    let inputs: Vec<[f32; 3]> = cases()[0].inputs.clone();
    let rows_inputs = inputs.clone();
    let schema = schema();
    let variants = vec![
        Variant {
            version: "1".into(),
            weight: 0.7,
        },
        Variant {
            version: "2".into(),
            weight: 0.3,
        },
    ];
    // The same 300 keys in each of three rounds.
    let (predictions, refused) = run_rounds(
        config(
            &root,
            ModelPlan::Single {
                model: "linear".into(),
                variants,
            },
        ),
        3,
        move |_| {
            (0..300)
                .map(|i| row(&schema, &format!("key-{i}"), rows_inputs[i % rows_inputs.len()]))
                .collect()
        },
        |_| true,
    );
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(predictions.len(), 900);
    let (v1, v2) = (expected("linear", "1"), expected("linear", "2"));
    let mut version_of: HashMap<String, String> = HashMap::new();
    for (_, prediction) in &predictions {
        let id = prediction.row.get("id").unwrap().as_str().unwrap().to_owned();
        let i: usize = id.strip_prefix("key-").unwrap().parse().unwrap();
        let want = if &*prediction.version == "1" { &v1 } else { &v2 };
        assert_close(&[first_output(prediction)], &[want[i % inputs.len()]], &id);
        let first = version_of
            .entry(id.clone())
            .or_insert_with(|| prediction.version.to_string());
        assert_eq!(*first, *prediction.version, "{id} changed variant");
    }
    let on_v2 = version_of.values().filter(|v| *v == "2").count();
    // 30 % of 300 keys, give or take what a hash does with 300 draws.
    assert!((60..=120).contains(&on_v2), "{on_v2} keys of 300 on the 30 % variant");
}

#[test]
fn ensembles_combine_by_mean_weighted_mean_and_majority_vote() {
    if !runtime_present() {
        return;
    }
    let root = fixtures().join("models");
    let inputs: Vec<[f32; 3]> = cases()[0].inputs.clone();
    let member = |model: &str, version: &str, weight: f64| EnsembleMember {
        model: model.into(),
        version: Some(version.into()),
        weight,
    };
    let run = |members: Vec<EnsembleMember>, combine: Combine| {
        let rows_inputs = inputs.clone();
        let schema = schema();
        let (mut predictions, refused) = run_rounds(
            config(&root, ModelPlan::Ensemble { members, combine }),
            1,
            move |_| {
                rows_inputs
                    .iter()
                    .enumerate()
                    .map(|(i, x)| row(&schema, &i.to_string(), *x))
                    .collect()
            },
            |_| true,
        );
        assert!(refused.is_empty(), "{refused:?}");
        predictions.sort_by_key(|(_, p)| p.row.get("id").unwrap().as_str().unwrap().parse::<usize>().unwrap());
        predictions.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
    };
    let (v1, v2, mlp) = (expected("linear", "1"), expected("linear", "2"), expected("mlp", "1"));

    let mean = run(vec![member("linear", "1", 1.0), member("mlp", "1", 1.0)], Combine::Mean);
    assert_eq!(mean.len(), inputs.len());
    for (i, p) in mean.iter().enumerate() {
        assert_close(&[first_output(p)], &[(v1[i] + mlp[i]) / 2.0], "mean");
        assert_eq!((&*p.model, &*p.version), ("linear+mlp", "1+1"));
    }
    let weighted = run(
        vec![member("linear", "1", 1.0), member("linear", "2", 3.0)],
        Combine::WeightedMean,
    );
    for (i, p) in weighted.iter().enumerate() {
        assert_close(&[first_output(p)], &[(v1[i] + 3.0 * v2[i]) / 4.0], "weighted mean");
    }
    // Votes: the classifier twice (weight 1 each) against the forest's label (weight 1.5).
    let (hot, forest) = (expected("hot", "1"), expected("iforest", "1"));
    let vote = run(
        vec![
            member("hot", "1", 1.0),
            member("iforest", "1", 1.5),
            member("hot", "1", 1.0),
        ],
        Combine::MajorityVote,
    );
    for (i, p) in vote.iter().enumerate() {
        assert_eq!(
            p.outputs,
            [Value::Int(hot[i] as i64)],
            "row {i}: hot {} forest {}",
            hot[i],
            forest[i]
        );
    }
    let tie = run(
        vec![member("hot", "1", 1.0), member("iforest", "1", 1.0)],
        Combine::MajorityVote,
    );
    for (i, p) in tie.iter().enumerate() {
        let (a, b) = (hot[i] as i64, forest[i] as i64);
        assert_eq!(
            p.outputs,
            [Value::Int(a.min(b))],
            "row {i}: a tie goes to the smallest label"
        );
    }
}

#[test]
fn rows_missing_a_feature_are_refused_or_imputed_as_configured() {
    if !runtime_present() {
        return;
    }
    let root = fixtures().join("models");
    let schema = schema();
    let make_rows = move |_| {
        vec![
            row(&schema, "whole", [60.0, 62.0, 80.0]),
            Row::new(
                Arc::clone(&schema),
                vec![Value::from("null"), Value::Null, Value::Float(62.0), Value::Float(80.0)],
            ),
            Row::new(
                Arc::clone(&schema),
                vec![
                    Value::from("nan"),
                    Value::Float(f64::NAN),
                    Value::Float(62.0),
                    Value::Float(80.0),
                ],
            ),
            Row::new(
                Arc::clone(&schema),
                vec![
                    Value::from("huge"),
                    Value::Float(1e300),
                    Value::Float(62.0),
                    Value::Float(80.0),
                ],
            ),
        ]
    };
    let plan = ModelPlan::Single {
        model: "linear".into(),
        variants: vec![Variant {
            version: "1".into(),
            weight: 1.0,
        }],
    };
    let (scored, refused) = run_rounds(config(&root, plan.clone()), 1, make_rows.clone(), |_| true);
    assert_eq!(scored.len(), 1);
    let reasons: Vec<(String, String)> = refused
        .iter()
        .map(|r| (r.row.get("id").unwrap().as_str().unwrap().to_owned(), r.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("null".to_owned(), "feature `avg` is missing (null)".to_owned()),
            (
                "nan".to_owned(),
                "feature `avg` is missing (not a finite 32-bit float)".to_owned()
            ),
            (
                "huge".to_owned(),
                "feature `avg` is missing (not a finite 32-bit float)".to_owned()
            ),
        ]
    );
    let mut imputing = config(&root, plan);
    imputing.missing = MissingPolicy::Impute(vec![60.0, 0.0, 0.0]);
    let (scored, refused) = run_rounds(imputing, 1, make_rows, |_| true);
    assert!(refused.is_empty());
    assert_eq!(scored.len(), 4);
    let whole = scored[0].1.outputs.clone();
    assert!(
        scored.iter().all(|(_, p)| p.outputs == whole),
        "avg imputed as 60 gives the whole row's prediction"
    );
}

#[test]
fn with_max_delay_a_batch_waits_for_more_rows_then_is_flushed_by_time() {
    if !runtime_present() {
        return;
    }
    let root = registry_with(&[("linear", "2")], "max-delay");
    let mut config = config(
        &root,
        ModelPlan::Single {
            model: "linear".into(),
            variants: Vec::new(),
        },
    );
    config.max_batch = 1000;
    config.max_delay_ms = 150;
    let (waited, total) = timely::execute_directly(move |worker| {
        let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Row>>> = InputHandle::new();
        let scored = std::rc::Rc::new(std::cell::RefCell::new(0usize));
        let counter = std::rc::Rc::clone(&scored);
        worker.dataflow(|scope| {
            let (predictions, _refused) = scope.input_from(&mut input).score_onnx("predict", &config);
            predictions.inspect(move |_| *counter.borrow_mut() += 1);
        });
        let schema = schema();
        // Five rows, far fewer than max_batch, and the input's time never advances:
        // only max_delay can release them.
        let started = Instant::now();
        for i in 0..5 {
            input.send(row(&schema, &format!("k{i}"), [1.0, 2.0, 3.0]));
        }
        input.flush();
        while *scored.borrow() < 5 && started.elapsed() < Duration::from_secs(10) {
            worker.step();
            assert!(
                *scored.borrow() == 0 || started.elapsed() >= Duration::from_millis(150),
                "rows came out after {:?}, before max_delay",
                started.elapsed()
            );
        }
        let waited = started.elapsed();
        input.close();
        while worker.step() {}
        let total = *scored.borrow();
        (waited, total)
    });
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(total, 5, "every row scored once");
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(5),
        "flushed after {waited:?}: by max_delay (150 ms), without the input's time advancing"
    );
}

/// Copies fixture `model`/`version` as tenant `tenant`'s model `as_model`.
fn copy_tenant_version(root: &Path, tenant: &str, as_model: &str, model: &str, version: &str) {
    let from = fixtures().join("models").join(model).join(version);
    let to = root.join("tenants").join(tenant).join(as_model).join(version);
    std::fs::create_dir_all(&to).unwrap();
    for file in ["model.onnx", "model.toml"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

#[test]
fn a_tenants_own_model_scores_its_rows_and_the_global_one_the_others() {
    if !runtime_present() {
        return;
    }
    // Global `linear` 2; acme's own `linear` is the fixture's version 1; globex's
    // own is the isolation forest (a label and a score: not the global's
    // outputs), which is not used, so globex's rows stay on the global model.
    let root = registry_with(&[("linear", "2")], "tenant-models");
    copy_tenant_version(&root, "acme", "linear", "linear", "1");
    copy_tenant_version(&root, "globex", "linear", "iforest", "1");
    let schema = Arc::new(
        RowSchema::new(vec![
            Column::new("tenant", ColumnType::Key),
            Column::new("avg", ColumnType::Float),
            Column::new("p95", ColumnType::Float),
            Column::new("max", ColumnType::Float),
        ])
        .unwrap(),
    );
    let inputs: Vec<[f32; 3]> = cases()
        .into_iter()
        .find(|c| c.model == "linear" && c.version == "1")
        .unwrap()
        .inputs;
    let count = inputs.len();
    let rows = move |_| -> Vec<Row> {
        ["acme", "globex", "initech"]
            .iter()
            .flat_map(|tenant| {
                let schema = Arc::clone(&schema);
                inputs.iter().map(move |x| {
                    let values = [x[0], x[1], x[2]].map(|v| Value::Float(f64::from(v)));
                    let mut all = vec![Value::from(*tenant)];
                    all.extend(values);
                    Row::new(Arc::clone(&schema), all)
                })
            })
            .collect()
    };
    let plan = ModelPlan::Single {
        model: "linear".into(),
        variants: Vec::new(),
    };
    let (predictions, refused) = run_rounds(config(&root, plan), 1, rows, |_| true);
    std::fs::remove_dir_all(&root).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(predictions.len(), 3 * count);
    for (tenant, version) in [("acme", "1"), ("globex", "2"), ("initech", "2")] {
        let mine: Vec<&Prediction> = predictions
            .iter()
            .map(|(_, p)| p)
            .filter(|p| p.row.get("tenant") == Some(&Value::from(tenant)))
            .collect();
        assert!(mine.iter().all(|p| &*p.version == version), "{tenant}: {mine:?}");
        let got: Vec<f64> = mine.iter().map(|p| first_output(p)).collect();
        assert_close(&got, &expected("linear", version), &format!("{tenant}'s rows"));
    }
}
