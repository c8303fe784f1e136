//! Unit tests of the metrics against hand-computed values.

use super::*;

fn one_hot(pred: &[usize], clusters: usize) -> Vec<f32> {
    pred.iter()
        .flat_map(|&k| (0..clusters).map(move |j| if j == k { 0.9 } else { 0.1 / clusters as f32 }))
        .collect()
}

#[test]
fn permuted_perfect_clustering() {
    let pred = [1, 1, 2, 2, 0, 0];
    let truth = [0, 0, 1, 1, 2, 2];
    let m = cluster_metrics(&one_hot(&pred, 3), 3, &truth, 3).unwrap();
    assert_eq!(m.acc, 1.0);
    assert_eq!(m.hungarian_match, vec![Some(2), Some(0), Some(1)]);
    assert_eq!(m.top5, 1.0);
    assert_eq!(m.top_k, 3);
    assert_eq!(m.per_class_acc, vec![Some(1.0); 3]);
    assert_eq!(m.confusion[1], vec![0.0, 1.0, 0.0]);
    assert_eq!(m.acc_majority, None);
}

#[test]
fn confusion_rows_are_normalised_by_true_class() {
    // Class 0: 3 samples (2 right), class 1: 1 sample (right).
    let pred = [0, 0, 1, 1];
    let truth = [0, 0, 0, 1];
    let m = cluster_metrics(&one_hot(&pred, 2), 2, &truth, 2).unwrap();
    assert_eq!(m.acc, 0.75);
    assert_eq!(
        m.confusion,
        vec![vec![2.0 / 3.0, 1.0 / 3.0], vec![0.0, 1.0]]
    );
    assert_eq!(m.per_class_acc, vec![Some(2.0 / 3.0), Some(1.0)]);
}

#[test]
fn top5_goes_through_the_match() {
    // 6 clusters, 6 classes; sample's argmax wrong but its 2nd choice right.
    let mut probs = vec![0.0f32; 6 * 6];
    let truth: Vec<usize> = (0..6).collect();
    for i in 0..6 {
        probs[i * 6 + i] = 0.5;
    }
    // Sample 0 also second-likely cluster 5 (cluster 5 is matched to class 5).
    probs[5] = 0.3;
    let m = cluster_metrics(&probs, 6, &truth, 6).unwrap();
    assert_eq!(m.top_k, 5);
    assert_eq!(m.top5, 1.0);
    assert_eq!(top_clusters(&probs[0..6], 3), vec![0, 5, 1]);
}

#[test]
fn overclustering_uses_majority_vote() {
    // 4 clusters, 2 classes: clusters 0,1 -> class 0; 2,3 -> class 1; one error in cluster 3.
    let pred = [0, 1, 2, 3, 3];
    let truth = [0, 0, 1, 1, 0];
    let m = cluster_metrics(&one_hot(&pred, 4), 4, &truth, 2).unwrap();
    assert_eq!(m.acc_majority, Some(0.8));
    assert_eq!(m.mapping, "majority");
    assert_eq!(m.cluster_to_class, vec![Some(0), Some(0), Some(1), Some(0)]);
    // Hungarian can match only two clusters.
    assert_eq!(m.hungarian_match.iter().flatten().count(), 2);
}

#[test]
fn degenerate_inputs_are_finite() {
    // One cluster, several classes, an empty class.
    let m = cluster_metrics(&[1.0; 4], 1, &[0, 1, 1, 0], 3).unwrap();
    assert_eq!((m.acc, m.nmi, m.ari), (0.5, 0.0, 0.0));
    assert_eq!(m.per_class_acc[2], None);
    assert_eq!(m.confusion[2], vec![0.0; 3]);
    // No samples.
    let m = cluster_metrics(&[], 3, &[], 3).unwrap();
    assert_eq!((m.acc, m.top5), (0.0, 0.0));
    assert!(m.nmi.is_finite() && m.ari.is_finite());
    // Errors.
    assert!(cluster_metrics(&[0.5, f32::NAN], 2, &[0], 2).is_err());
    assert!(cluster_metrics(&[1.0], 1, &[3], 2).is_err());
    assert!(cluster_metrics(&[1.0, 0.0], 1, &[0], 1).is_err());
    assert!(cluster_metrics(&[], 0, &[], 1).is_err());
}
