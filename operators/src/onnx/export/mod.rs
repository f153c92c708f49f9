//! Models trained in Rust written as ONNX, so the registry, the `onnx`
//! operator and the predict API run them like any other model.
//!
//! - [`linear_regression`]: `MatMul` + `Add` (default opset 17).
//! - [`isolation_forest`]: the anomaly operator's native forest folded into
//!   one `ai.onnx.ml` `TreeEnsembleRegressor` (opset 3) whose leaf values are
//!   the path lengths (depth + c(leaf size)), averaged over the trees, then
//!   `Pow(2, −mean / c(ψ))`: the forest's anomaly score in 4 nodes.
//!
//! Both take one float input of shape `[N, features]` and give one float
//! output of shape `[N, 1]`. The messages are [`proto`]'s.

pub mod proto;

use prost::Message;

use crate::anomaly::{ForestNode, IsolationForest, average_path};
use proto::{
    AttributeProto, AttributeType, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto, data_type,
};

/// The ONNX IR version written (ONNX 1.12, the one of opset 17).
pub const IR_VERSION: i64 = 8;
/// The default-domain operator set the graphs use.
pub const OPSET: i64 = 17;
/// The `ai.onnx.ml` operator set (`TreeEnsembleRegressor` as ONNX Runtime
/// and skl2onnx know it).
pub const ML_OPSET: i64 = 3;

/// A linear regression `output = input · weights + intercept` as an ONNX
/// model: input `input` `[N, weights.len()]`, output `output` `[N, 1]`.
///
/// # Examples
/// ```
/// use pulse_operators::onnx::export;
///
/// let bytes = export::linear_regression("X", "prediction", &[2.0, -1.0], 0.5, "y = 2a - b + 0.5");
/// assert!(bytes.len() > 50);
/// ```
pub fn linear_regression(input: &str, output: &str, weights: &[f64], intercept: f64, doc: &str) -> Vec<u8> {
    let width = weights.len() as i64;
    let graph = GraphProto {
        name: "linear_regression".into(),
        node: vec![
            node("MatMul", "", &[input, "weights"], &["product"], Vec::new()),
            node("Add", "", &["product", "intercept"], &[output], Vec::new()),
        ],
        initializer: vec![
            float_tensor("weights", vec![width, 1], weights.iter().map(|w| *w as f32).collect()),
            float_tensor("intercept", vec![1], vec![intercept as f32]),
        ],
        input: vec![batch_of(input, width)],
        output: vec![batch_of(output, 1)],
    };
    model(graph, &[("", OPSET)], doc)
}

/// `forest`'s anomaly score as an ONNX model: input `input` `[N, features]`,
/// output `output` `[N, 1]`, equal to [`IsolationForest::score`] of the
/// same (32-bit float) features up to float rounding of the mean.
///
/// Thresholds are rounded up to the next `f32`, so that for every `f32`
/// feature value `x < threshold` decides as the native forest does in `f64`.
///
/// # Examples
/// ```
/// use pulse_operators::anomaly::IsolationForest;
/// use pulse_operators::onnx::export;
///
/// let points: Vec<Vec<f64>> = (0..200).map(|i| vec![f64::from(i % 10), f64::from(i % 7)]).collect();
/// let forest = IsolationForest::train(&points, 10, 64, 1);
/// let bytes = export::isolation_forest("X", "score", &forest, "test forest");
/// assert!(bytes.len() > 100);
/// ```
pub fn isolation_forest(input: &str, output: &str, forest: &IsolationForest, doc: &str) -> Vec<u8> {
    let mut ensemble = TreeArrays::default();
    for tree in 0..forest.tree_count() {
        ensemble.add_tree(tree as i64, &forest.tree(tree));
    }
    let mut attributes = vec![
        ints("nodes_treeids", ensemble.tree_ids),
        ints("nodes_nodeids", ensemble.node_ids),
        ints("nodes_featureids", ensemble.feature_ids),
        floats("nodes_values", ensemble.thresholds),
        strings("nodes_modes", ensemble.modes),
        ints("nodes_truenodeids", ensemble.true_ids),
        ints("nodes_falsenodeids", ensemble.false_ids),
        ints("target_treeids", ensemble.target_tree_ids),
        ints("target_nodeids", ensemble.target_node_ids),
        ints("target_ids", vec![0; ensemble.target_weights.len()]),
        floats("target_weights", ensemble.target_weights),
    ];
    attributes.push(int("n_targets", 1));
    attributes.push(string("aggregate_function", "AVERAGE"));
    attributes.push(string("post_transform", "NONE"));
    // Score 2^(−E[h(x)] / c(ψ)), as IsolationForest::score computes it.
    let scale = -1.0 / average_path(forest.sample_size()).max(1e-9);
    let graph = GraphProto {
        name: "isolation_forest".into(),
        node: vec![
            node(
                "TreeEnsembleRegressor",
                "ai.onnx.ml",
                &[input],
                &["mean_path_length"],
                attributes,
            ),
            node("Mul", "", &["mean_path_length", "scale"], &["exponent"], Vec::new()),
            node("Pow", "", &["two", "exponent"], &[output], Vec::new()),
        ],
        initializer: vec![
            float_tensor("scale", vec![1], vec![scale as f32]),
            float_tensor("two", vec![1], vec![2.0]),
        ],
        input: vec![batch_of(input, forest.features() as i64)],
        output: vec![batch_of(output, 1)],
    };
    model(graph, &[("", OPSET), ("ai.onnx.ml", ML_OPSET)], doc)
}

/// The node arrays of a `TreeEnsembleRegressor`, tree after tree.
#[derive(Default)]
struct TreeArrays {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    thresholds: Vec<f32>,
    modes: Vec<&'static str>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    target_tree_ids: Vec<i64>,
    target_node_ids: Vec<i64>,
    target_weights: Vec<f32>,
}

impl TreeArrays {
    fn add_tree(&mut self, tree: i64, nodes: &[ForestNode]) {
        // Depth of each node: its parent's plus one (parents come first).
        let mut depth = vec![0usize; nodes.len()];
        for (at, node) in nodes.iter().enumerate() {
            if let ForestNode::Split { left, right, .. } = *node {
                depth[left] = depth[at] + 1;
                depth[right] = depth[at] + 1;
            }
        }
        for (at, node) in nodes.iter().enumerate() {
            self.tree_ids.push(tree);
            self.node_ids.push(at as i64);
            match *node {
                ForestNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    self.feature_ids.push(feature as i64);
                    self.thresholds.push(f32_at_least(threshold));
                    self.modes.push("BRANCH_LT");
                    self.true_ids.push(left as i64);
                    self.false_ids.push(right as i64);
                }
                ForestNode::Leaf { size } => {
                    self.feature_ids.push(0);
                    self.thresholds.push(0.0);
                    self.modes.push("LEAF");
                    self.true_ids.push(0);
                    self.false_ids.push(0);
                    self.target_tree_ids.push(tree);
                    self.target_node_ids.push(at as i64);
                    self.target_weights.push((depth[at] as f64 + average_path(size)) as f32);
                }
            }
        }
    }
}

/// The smallest `f32` not below `x`: for any `f32` value `v`, `v < x` exactly
/// when `v < f32_at_least(x)`.
fn f32_at_least(x: f64) -> f32 {
    let rounded = x as f32;
    if f64::from(rounded) < x {
        rounded.next_up()
    } else {
        rounded
    }
}

fn model(graph: GraphProto, opsets: &[(&str, i64)], doc: &str) -> Vec<u8> {
    ModelProto {
        ir_version: IR_VERSION,
        producer_name: "pulse".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: doc.into(),
        graph: Some(graph),
        opset_import: opsets
            .iter()
            .map(|(domain, version)| OperatorSetIdProto {
                domain: (*domain).into(),
                version: *version,
            })
            .collect(),
    }
    .encode_to_vec()
}

fn node(op_type: &str, domain: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        name: format!("{op_type}_{}", outputs.first().copied().unwrap_or_default()),
        op_type: op_type.into(),
        attribute,
        domain: domain.into(),
    }
}

/// A float tensor `[N, width]` (N: the batch).
fn batch_of(name: &str, width: i64) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension {
                            dim_value: None,
                            dim_param: Some("N".into()),
                        },
                        Dimension {
                            dim_value: Some(width),
                            dim_param: None,
                        },
                    ],
                }),
            }),
        }),
    }
}

fn float_tensor(name: &str, dims: Vec<i64>, values: Vec<f32>) -> TensorProto {
    TensorProto {
        dims,
        data_type: data_type::FLOAT,
        float_data: values,
        name: name.into(),
    }
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: kind as i32,
        ..AttributeProto::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: value,
        ..attribute(name, AttributeType::Int)
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        s: value.as_bytes().to_vec(),
        ..attribute(name, AttributeType::String)
    }
}

fn ints(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        ints: values,
        ..attribute(name, AttributeType::Ints)
    }
}

fn floats(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto {
        floats: values,
        ..attribute(name, AttributeType::Floats)
    }
}

fn strings(name: &str, values: Vec<&str>) -> AttributeProto {
    AttributeProto {
        strings: values.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attribute(name, AttributeType::Strings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_up_to_a_float_that_splits_floats_alike() {
        for x in [0.1f64, -0.1, 1.0, 3.000_000_1, 1e-40, -7.25] {
            let t = f32_at_least(x);
            assert!(f64::from(t) >= x);
            let below = t.next_down();
            assert!(f64::from(below) < x, "{x}: {below} should be below");
        }
    }

    #[test]
    fn a_written_model_reads_back() {
        let bytes = linear_regression("X", "y", &[1.0, 2.0], 3.0, "doc");
        let model = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = model.graph.unwrap();
        assert_eq!(graph.node.len(), 2);
        assert_eq!(graph.initializer[0].float_data, [1.0, 2.0]);
        assert_eq!(model.opset_import[0].version, OPSET);
    }
}
