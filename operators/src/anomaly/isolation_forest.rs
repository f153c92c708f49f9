//! A native Isolation Forest (Liu, Ting and Zhou, 2008) over fixed-length
//! feature vectors: random axis-parallel splits isolate outliers in fewer
//! steps, so a short average path means an anomaly.
//!
//! Training is a pure function of the points and a seed ([`SplitMix64`]), so a
//! replay trains the same model. The model is plain data (serde).

use serde::{Deserialize, Serialize};

/// A small, seedable, portable pseudo-random generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform index in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// One node of a tree: a split, or a leaf holding how many training points reached it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Node {
    Split {
        feature: u16,
        threshold: f64,
        left: u32,
        right: u32,
    },
    Leaf {
        size: u32,
    },
}

/// A trained forest.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::IsolationForest;
///
/// let points: Vec<Vec<f64>> = (0..500).map(|i| vec![f64::from(i % 10), f64::from(i % 7)]).collect();
/// let forest = IsolationForest::train(&points, 50, 128, 7);
/// assert!(forest.score(&[100.0, 100.0]) > forest.score(&[5.0, 3.0]));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    trees: Vec<Vec<Node>>,
    sample_size: usize,
    features: usize,
}

/// One node of a trained tree as [`IsolationForest::tree`] reads it out (to
/// export the forest, e.g. to ONNX).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ForestNode {
    /// A point whose `feature` is below `threshold` goes to `left`, any other
    /// to `right` (indices of nodes of the same tree).
    Split {
        /// The feature tested.
        feature: usize,
        /// The split value.
        threshold: f64,
        /// The node below the threshold.
        left: usize,
        /// The node at or above it.
        right: usize,
    },
    /// A leaf that `size` training points reached: a path ending here is
    /// its depth plus [`average_path`]`(size)` long.
    Leaf {
        /// Training points that reached it.
        size: usize,
    },
}

/// c(n): the average path length of an unsuccessful search in a binary search tree of n points.
pub fn average_path(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl IsolationForest {
    /// Trains `trees` trees, each on `sample_size` points drawn without replacement.
    ///
    /// Panics only if `points` have different lengths (a broken invariant of the caller).
    pub fn train(points: &[Vec<f64>], trees: usize, sample_size: usize, seed: u64) -> Self {
        let features = points.first().map_or(0, Vec::len);
        assert!(
            points.iter().all(|p| p.len() == features),
            "feature vectors of one length"
        );
        let sample_size = sample_size.min(points.len()).max(1);
        let height_limit = (sample_size as f64).log2().ceil() as usize;
        let mut rng = SplitMix64::new(seed);
        let mut indices: Vec<usize> = (0..points.len()).collect();
        let trees = (0..trees)
            .map(|_| {
                // Partial Fisher-Yates: the first `sample_size` indices are the sample.
                for i in 0..sample_size.min(indices.len()) {
                    let j = i + rng.below(indices.len() - i);
                    indices.swap(i, j);
                }
                let mut sample: Vec<usize> = indices[..sample_size.min(indices.len())].to_vec();
                let mut nodes = Vec::with_capacity(2 * sample_size);
                grow(points, &mut sample, 0, height_limit, features, &mut rng, &mut nodes);
                nodes
            })
            .collect();
        Self {
            trees,
            sample_size,
            features,
        }
    }

    /// How many trees the forest has.
    pub fn tree_count(&self) -> usize {
        self.trees.len()
    }

    /// The nodes of tree `index` (its root first), or none past the last tree.
    pub fn tree(&self, index: usize) -> Vec<ForestNode> {
        let Some(tree) = self.trees.get(index) else {
            return Vec::new();
        };
        tree.iter()
            .map(|node| match *node {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => ForestNode::Split {
                    feature: usize::from(feature),
                    threshold,
                    left: left as usize,
                    right: right as usize,
                },
                Node::Leaf { size } => ForestNode::Leaf { size: size as usize },
            })
            .collect()
    }

    /// Points each tree was grown on (ψ): the score divides path lengths by
    /// [`average_path`]`(sample_size)`.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// Feature-vector length the model was trained on.
    pub fn features(&self) -> usize {
        self.features
    }

    /// The anomaly score 2^(−E[h(x)] / c(ψ)) in (0, 1]: ≈ 0.5 or less is normal, near 1 is isolated.
    pub fn score(&self, point: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.0;
        }
        let total: f64 = self.trees.iter().map(|tree| path_length(tree, point)).sum();
        let mean = total / self.trees.len() as f64;
        let c = average_path(self.sample_size).max(1e-9);
        2f64.powf(-mean / c)
    }

    /// Bytes the model occupies in memory.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .trees
                .iter()
                .map(|t| std::mem::size_of::<Vec<Node>>() + t.capacity() * std::mem::size_of::<Node>())
                .sum::<usize>()
    }
}

/// Grows one tree over `sample` (indices into `points`), appending nodes; returns the root's index.
fn grow(
    points: &[Vec<f64>],
    sample: &mut [usize],
    depth: usize,
    height_limit: usize,
    features: usize,
    rng: &mut SplitMix64,
    nodes: &mut Vec<Node>,
) -> u32 {
    let at = nodes.len() as u32;
    nodes.push(Node::Leaf {
        size: sample.len() as u32,
    });
    if depth >= height_limit || sample.len() <= 1 || features == 0 {
        return at;
    }
    // Pick a feature that is not constant over the sample (a few tries), then a uniform split.
    for _ in 0..features.max(4) {
        let feature = rng.below(features);
        let (lo, hi) = sample.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
            (lo.min(points[i][feature]), hi.max(points[i][feature]))
        });
        if hi <= lo {
            continue;
        }
        let threshold = lo + rng.next_f64() * (hi - lo);
        let mut split = 0;
        for i in 0..sample.len() {
            if points[sample[i]][feature] < threshold {
                sample.swap(i, split);
                split += 1;
            }
        }
        if split == 0 || split == sample.len() {
            continue;
        }
        let (left_sample, right_sample) = sample.split_at_mut(split);
        let left = grow(points, left_sample, depth + 1, height_limit, features, rng, nodes);
        let right = grow(points, right_sample, depth + 1, height_limit, features, rng, nodes);
        nodes[at as usize] = Node::Split {
            feature: feature as u16,
            threshold,
            left,
            right,
        };
        return at;
    }
    at
}

fn path_length(tree: &[Node], point: &[f64]) -> f64 {
    let mut at = 0usize;
    let mut depth = 0.0;
    loop {
        match tree[at] {
            Node::Leaf { size } => return depth + average_path(size as usize),
            Node::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                let value = point.get(feature as usize).copied().unwrap_or(0.0);
                at = if value < threshold { left } else { right } as usize;
                depth += 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| vec![rng.next_f64(), rng.next_f64(), rng.next_f64()])
            .collect()
    }

    #[test]
    fn the_same_seed_trains_the_same_forest() {
        let points = cluster(1000, 1);
        assert_eq!(
            IsolationForest::train(&points, 20, 64, 9),
            IsolationForest::train(&points, 20, 64, 9)
        );
        assert_ne!(
            IsolationForest::train(&points, 20, 64, 9),
            IsolationForest::train(&points, 20, 64, 10)
        );
    }

    #[test]
    fn outliers_score_higher_than_inliers() {
        let points = cluster(2000, 2);
        let forest = IsolationForest::train(&points, 100, 256, 3);
        let inlier = forest.score(&[0.5, 0.5, 0.5]);
        let outlier = forest.score(&[3.0, -2.0, 0.5]);
        assert!(outlier > 0.6 && inlier < 0.5, "outlier {outlier} inlier {inlier}");
    }

    #[test]
    fn a_model_survives_serde() {
        let forest = IsolationForest::train(&cluster(300, 4), 5, 32, 5);
        let json = serde_json::to_string(&forest).unwrap();
        let back: IsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, forest);
        assert_eq!(back.score(&[0.1, 0.2, 0.3]), forest.score(&[0.1, 0.2, 0.3]));
    }

    #[test]
    fn constant_data_trains_a_forest_of_leaves() {
        let points = vec![vec![1.0, 1.0]; 100];
        let forest = IsolationForest::train(&points, 3, 16, 1);
        assert!(forest.score(&[1.0, 1.0]).is_finite());
    }
}
