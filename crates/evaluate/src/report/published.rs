//! Published numbers to compare with (METHOD.md §9.3), per dataset.

pub use scan_core::params::Published;

/// One published result; each value is text as published (percent), `–` where not reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRow {
    pub method: &'static str,
    pub acc: &'static str,
    pub nmi: &'static str,
    pub ari: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTable {
    pub dataset: &'static str,
    pub rows: Vec<PublishedRow>,
    pub note: &'static str,
}

const fn row(
    method: &'static str,
    acc: &'static str,
    nmi: &'static str,
    ari: &'static str,
) -> PublishedRow {
    PublishedRow {
        method,
        acc,
        nmi,
        ari,
    }
}

/// The published numbers behind each [`Published`] choice.
pub trait PublishedTables: Sized {
    /// The table for a dataset name as the ingest stage records it (`cifar10`, `cifar100-20`,
    /// `stl10`, `fashion-mnist`; a few spellings accepted), [`Published::None`] for others.
    fn from_dataset(name: &str) -> Self;
    /// The published numbers, `None` for [`Published::None`].
    fn table(self) -> Option<PublishedTable>;
}

impl PublishedTables for Published {
    fn from_dataset(name: &str) -> Published {
        let n: String = name
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        match n.as_str() {
            "cifar10" => Published::Cifar10,
            "cifar10020" | "cifar20" => Published::Cifar100_20,
            "stl10" => Published::Stl10,
            "fashionmnist" => Published::FashionMnist,
            _ => Published::None,
        }
    }

    fn table(self) -> Option<PublishedTable> {
        let (dataset, rows, note) = match self {
            Published::None => return None,
            Published::Cifar10 => (
                "CIFAR-10",
                vec![
                    row(
                        "paper, SCAN loss (10 runs)",
                        "81.8 ± 0.3",
                        "71.2 ± 0.4",
                        "66.5 ± 0.4",
                    ),
                    row(
                        "paper, + self-label",
                        "87.6 ± 0.4",
                        "78.7 ± 0.5",
                        "75.8 ± 0.7",
                    ),
                    row(
                        "pretext + K-means",
                        "65.9 ± 5.7",
                        "59.8 ± 2.0",
                        "50.9 ± 3.7",
                    ),
                    row("seed reimplementation, SCAN", "79.7", "67.4", "62.3"),
                    row(
                        "seed reimplementation, + self-label",
                        "87.2",
                        "79.7",
                        "75.8",
                    ),
                ],
                "Ablation: SCAN loss with SimCLR instead of the strong augmentation 78.7 ACC.",
            ),
            Published::Cifar100_20 => (
                "CIFAR-100-20",
                vec![
                    row("paper, SCAN loss", "42.2 ± 3.0", "–", "–"),
                    row("paper, + self-label", "45.9 ± 2.7", "–", "–"),
                ],
                "",
            ),
            Published::Stl10 => (
                "STL-10",
                vec![
                    row("paper, SCAN loss", "75.5 ± 2.0", "–", "–"),
                    row("paper, + self-label", "76.7 ± 1.9", "–", "–"),
                ],
                "",
            ),
            Published::FashionMnist => (
                "Fashion-MNIST",
                vec![
                    row(
                        "deep clustering (range of published results)",
                        "59–79",
                        "–",
                        "–",
                    ),
                    row("DEC", "≈ 59", "–", "–"),
                    row("N2D", "67.2", "–", "–"),
                ],
                "There is no official SCAN number for Fashion-MNIST.",
            ),
        };
        Some(PublishedTable {
            dataset,
            rows,
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_map_to_tables() {
        assert_eq!(Published::from_dataset("cifar10"), Published::Cifar10);
        assert_eq!(
            Published::from_dataset("CIFAR-100-20"),
            Published::Cifar100_20
        );
        assert_eq!(
            Published::from_dataset("fashion-mnist"),
            Published::FashionMnist
        );
        assert_eq!(Published::from_dataset("mnist"), Published::None);
        assert!(Published::None.table().is_none());
        let t = Published::Cifar10.table().unwrap();
        assert_eq!(t.rows[0].acc, "81.8 ± 0.3");
        let p: Published = serde_json::from_str("\"stl10\"").unwrap();
        assert_eq!(p.table().unwrap().rows[1].acc, "76.7 ± 1.9");
    }
}
