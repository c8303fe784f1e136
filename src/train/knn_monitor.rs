//! The pretext stage's monitor (METHOD.md §3.6): weighted kNN classification of the test split by
//! the train split's features, K = `knn_k` neighbours weighted by exp(sim / τ), τ the pretext loss
//! temperature (as the reference's memory bank).

use tch::{Kind, Tensor};

/// Accuracy of weighted-kNN voting. `train`/`test`: L2-normalised features `[N, d]`;
/// labels int64 on the same device; `classes` the number of classes.
pub fn weighted_knn_accuracy(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    test_labels: &Tensor,
    classes: i64,
    k: i64,
    temperature: f64,
) -> f64 {
    let _guard = tch::no_grad_guard();
    let n_test = test.size()[0];
    let k = k.min(train.size()[0]);
    if n_test == 0 || k == 0 {
        return f64::NAN;
    }
    let mut correct = 0i64;
    let block = 1024;
    let mut start = 0;
    while start < n_test {
        let len = block.min(n_test - start);
        let q = test.narrow(0, start, len);
        let sims = q.matmul(&train.tr());
        let (top, idx) = sims.topk(k, 1, true, true);
        let weights = (top / temperature).exp();
        let votes_labels = train_labels.index_select(0, &idx.view([-1])).view([len, k]);
        let votes = Tensor::zeros([len, classes], (Kind::Float, q.device())).scatter_add(
            1,
            &votes_labels,
            &weights,
        );
        let pred = votes.argmax(1, false);
        correct += pred
            .eq_tensor(&test_labels.narrow(0, start, len))
            .sum(Kind::Int64)
            .int64_value(&[]);
        start += len;
    }
    correct as f64 / n_test as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_clusters_are_classified() {
        // Two classes on opposite unit vectors: every test point votes its own class.
        let a = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, -1.0, 0.0]).view([3, 2]);
        let la = Tensor::from_slice(&[0i64, 0, 1]);
        let t = Tensor::from_slice(&[1.0f32, 0.0, -1.0, 0.0]).view([2, 2]);
        let lt = Tensor::from_slice(&[0i64, 1]);
        assert_eq!(weighted_knn_accuracy(&a, &la, &t, &lt, 2, 2, 0.1), 1.0);
    }
}
