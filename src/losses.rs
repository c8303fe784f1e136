//! The three training losses, exactly as the reference implementation computes them:
//! - SimCLR (METHOD.md §3): one-directional, anchors = view-0 features, contrast set = both views;
//! - SCAN (METHOD.md §5): consistency − λ·entropy per head, and the test-split selection loss;
//! - confidence-based, class-balanced cross-entropy for self-labeling (METHOD.md §6).

use tch::{Kind, Reduction, Tensor};

/// SimCLR loss of `z` = L2-normalised features `[2b, d]`: rows `0..b` are view 0, rows `b..2b` view 1
/// of the same images. logits = anchor·contrastᵀ/τ − (detached) row max; self-similarity masked out;
/// positive of anchor i is column b+i; loss = −mean_i [logit(i, b+i) − log Σ_{j≠i} exp(logit(i, j))].
pub fn simclr_loss(z: &Tensor, temperature: f64) -> Tensor {
    let two_b = z.size()[0];
    let b = two_b / 2;
    let anchors = z.narrow(0, 0, b);
    let logits = anchors.matmul(&z.tr()) / temperature;
    let (max, _) = logits.max_dim(1, true);
    let logits = logits - max.detach();
    // Mask out the self-similarity (i, i) of each anchor.
    let not_self = Tensor::ones([b, two_b], (Kind::Float, z.device()))
        - Tensor::eye_m(b, two_b, (Kind::Float, z.device()));
    let log_denominator = (logits.exp() * &not_self)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        .log();
    let positive_index = Tensor::arange_start(b, two_b, (Kind::Int64, z.device())).view([b, 1]);
    let positive = logits.gather(1, &positive_index, false).view([b]);
    -(positive - log_denominator).mean(Kind::Float)
}

/// The three parts of the SCAN loss of one head.
#[derive(Debug)]
pub struct ScanLoss {
    pub total: Tensor,
    pub consistency: Tensor,
    pub entropy: Tensor,
}

/// Entropy −Σ_c p_c log p_c of a probability vector with each p_c clamped to ≥ 1e-8 (METHOD.md §5).
pub fn entropy(p: &Tensor) -> Tensor {
    let p = p.clamp_min(1e-8);
    -(&p * p.log()).sum(Kind::Float)
}

/// −mean log(x) with log clamped at ≥ −100: PyTorch's `BCELoss(x, 1)`. `x` is clamped to ≤ 1 first
/// (a dot product of two probability vectors can exceed 1 by rounding; PyTorch would raise then).
fn bce_with_ones(x: &Tensor) -> Tensor {
    -x.clamp_max(1.0).log().clamp_min(-100.0).mean(Kind::Float)
}

/// SCAN loss of one head: p_a = softmax(anchor logits), p_n = softmax(neighbour logits);
/// consistency = −mean log⟨p_a, p_n⟩; entropy of the mean p_a; total = consistency − λ·entropy.
pub fn scan_loss(
    anchor_logits: &Tensor,
    neighbor_logits: &Tensor,
    entropy_weight: f64,
) -> ScanLoss {
    let pa = anchor_logits.softmax(1, Kind::Float);
    let pn = neighbor_logits.softmax(1, Kind::Float);
    let similarity = (&pa * &pn).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let consistency = bce_with_ones(&similarity);
    let entropy = entropy(&pa.mean_dim([0i64].as_slice(), false, Kind::Float));
    let total = &consistency - entropy_weight * &entropy;
    ScanLoss {
        total,
        consistency,
        entropy,
    }
}

/// Selection loss of one head on the test split (METHOD.md §5): `probs` `[N, C]`, `neighbors`
/// `[N, K]` int64 indices into the same rows (self included). consistency over every (anchor,
/// neighbour column) pair, entropy of the mean probabilities, total = consistency − 1·entropy.
/// Returns (total, consistency, entropy).
pub fn scan_selection_loss(probs: &Tensor, neighbors: &Tensor) -> (f64, f64, f64) {
    let (n, k) = (neighbors.size()[0], neighbors.size()[1]);
    let anchors = Tensor::arange(n, (Kind::Int64, probs.device()))
        .view([n, 1])
        .expand([n, k], false)
        .reshape([-1]);
    let nb = neighbors.reshape([-1]);
    let similarity = (probs.index_select(0, &anchors) * probs.index_select(0, &nb))
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let consistency = bce_with_ones(&similarity).double_value(&[]);
    let ent = entropy(&probs.mean_dim([0i64].as_slice(), false, Kind::Float)).double_value(&[]);
    (consistency - ent, consistency, ent)
}

/// Self-labeling loss (METHOD.md §6): mask = max softmax(weak) > `threshold` (strict), targets =
/// argmax weak; class weights n_masked / count_c for present classes (1 for absent ones); weighted
/// cross-entropy of `strong_logits` on masked samples (PyTorch weighted mean). `None` when no
/// sample passes the threshold (the reference raises; the caller skips the batch and counts it).
/// Returns (loss, number of confident samples).
pub fn selflabel_loss(
    weak_logits: &Tensor,
    strong_logits: &Tensor,
    threshold: f64,
) -> Option<(Tensor, i64)> {
    let weak = weak_logits.detach().softmax(1, Kind::Float);
    let (max_prob, target) = weak.max_dim(1, false);
    let mask = max_prob.gt(threshold);
    let n = mask.sum(Kind::Int64).int64_value(&[]);
    if n == 0 {
        return None;
    }
    let c = weak_logits.size()[1];
    let target_masked = target.masked_select(&mask);
    let counts = target_masked
        .bincount::<Tensor>(None, c)
        .to_kind(Kind::Float);
    let present = counts.gt(0.0);
    let weight = (n as f64 / counts.clamp_min(1.0)).where_self(&present, &counts.ones_like());
    let idx = mask.nonzero().view([-1]);
    let input = strong_logits.index_select(0, &idx);
    let loss = input.cross_entropy_loss(&target_masked, Some(&weight), Reduction::Mean, -100, 0.0);
    Some((loss, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_uniform_value() {
        // Uniform outputs, C = 10, λ = 5: consistency = ln 10, entropy = ln 10 → (1 − 5)·ln 10.
        let a = Tensor::zeros([7, 10], (Kind::Float, tch::Device::Cpu));
        let l = scan_loss(&a, &a, 5.0);
        let expect = -4.0 * 10f64.ln();
        assert!((l.total.double_value(&[]) - expect).abs() < 1e-5);
        assert!((expect + 9.2103).abs() < 1e-4);
    }

    #[test]
    fn selflabel_skips_unconfident_batch() {
        let a = Tensor::zeros([4, 3], (Kind::Float, tch::Device::Cpu));
        assert!(selflabel_loss(&a, &a, 0.99).is_none());
    }
}
