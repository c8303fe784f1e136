//! Per-channel normalisation statistics of each dataset (METHOD.md §2.3).

/// `(mean, std)` per channel for `dataset` (the names of the `ingest` params) with `channels` channels.
///
/// CIFAR-10, CIFAR-100(-20) and STL-10 (ImageNet statistics) as in METHOD.md §2.3; MNIST 0.1307 / 0.3081 and
/// Fashion-MNIST 0.2860 / 0.3530 (one channel); anything else (e.g. `folder`) 0.5 / 0.5. One-channel
/// statistics are repeated when more channels are asked for; three-channel statistics asked for with
/// another channel count fall back to 0.5 / 0.5.
pub fn norm_stats(dataset: &str, channels: usize) -> (Vec<f64>, Vec<f64>) {
    let (mean, std): (&[f64], &[f64]) = match dataset {
        "cifar10" => (&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]),
        "cifar100" | "cifar100-20" => (&[0.5071, 0.4867, 0.4408], &[0.2675, 0.2565, 0.2761]),
        "stl10" => (&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]),
        "mnist" => (&[0.1307], &[0.3081]),
        "fashion-mnist" => (&[0.2860], &[0.3530]),
        _ => (&[0.5], &[0.5]),
    };
    if mean.len() == channels {
        (mean.to_vec(), std.to_vec())
    } else if mean.len() == 1 {
        (vec![mean[0]; channels], vec![std[0]; channels])
    } else {
        (vec![0.5; channels], vec![0.5; channels])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_follow_the_spec() {
        assert_eq!(norm_stats("cifar10", 3).0, vec![0.4914, 0.4822, 0.4465]);
        assert_eq!(norm_stats("cifar100-20", 3).1, vec![0.2675, 0.2565, 0.2761]);
        assert_eq!(norm_stats("stl10", 3).0, vec![0.485, 0.456, 0.406]);
        assert_eq!(norm_stats("fashion-mnist", 1), (vec![0.2860], vec![0.3530]));
        assert_eq!(norm_stats("mnist", 3), (vec![0.1307; 3], vec![0.3081; 3]));
        assert_eq!(norm_stats("folder", 3), (vec![0.5; 3], vec![0.5; 3]));
        assert_eq!(norm_stats("cifar10", 1), (vec![0.5], vec![0.5]));
    }
}
