//! Where the raw files of each dataset live: the folder layouts searched under each data directory
//! (the folders the official archives extract to, or the directory itself), the official `.tar.gz`
//! archives read in place ([`super::archive`]), and the message that says which files to put where
//! when they are missing (README, "Datasets").

use std::path::PathBuf;

use super::ingest::{DatasetKind, Split};
use super::raw::{locate, plain_or_gz, Need};

/// The file format of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// IDX images + labels (MNIST, Fashion-MNIST).
    Idx,
    /// CIFAR binary version.
    CifarBin,
    /// CIFAR python version (pickles).
    CifarPickle,
    /// STL-10 binary (`*_X.bin`, `*_y.bin`).
    Stl,
}

/// A way the files of one split can be laid out: candidate subfolders of a data directory (`""` =
/// the directory itself) and the files required there; and the official archive holding them.
pub struct Layout {
    pub format: Format,
    pub subdirs: Vec<&'static str>,
    pub needs: Vec<Need>,
    /// The official `.tar.gz` (looked for in the data directory itself) and the folder inside it
    /// that holds the files of `needs` (their first names).
    pub archive: Option<(&'static str, &'static str)>,
}

fn names(list: &[String]) -> Vec<Need> {
    list.iter().map(|n| vec![n.clone()]).collect()
}

/// The layouts of `split` of `kind`, in order of preference (not for `folder`).
pub fn layouts(kind: DatasetKind, split: Split) -> Vec<Layout> {
    use DatasetKind::*;
    let s = split.name();
    match kind {
        Mnist | FashionMnist => {
            let p = if split == Split::Train {
                "train"
            } else {
                "t10k"
            };
            let subdirs = if kind == Mnist {
                vec!["", "mnist", "MNIST/raw"]
            } else {
                vec!["", "fashion-mnist", "FashionMNIST/raw"]
            };
            vec![Layout {
                format: Format::Idx,
                subdirs,
                needs: vec![
                    plain_or_gz(&format!("{p}-images-idx3-ubyte")),
                    plain_or_gz(&format!("{p}-labels-idx1-ubyte")),
                ],
                archive: None,
            }]
        }
        Cifar10 => {
            let files: Vec<String> = if split == Split::Train {
                (1..=5).map(|i| format!("data_batch_{i}")).collect()
            } else {
                vec!["test_batch".into()]
            };
            let bin: Vec<String> = files.iter().map(|f| format!("{f}.bin")).collect();
            vec![
                Layout {
                    format: Format::CifarBin,
                    subdirs: vec!["cifar-10-batches-bin", ""],
                    needs: names(&bin),
                    archive: Some(("cifar-10-binary.tar.gz", "cifar-10-batches-bin")),
                },
                Layout {
                    format: Format::CifarPickle,
                    subdirs: vec!["cifar-10-batches-py", ""],
                    needs: names(&files),
                    archive: Some(("cifar-10-python.tar.gz", "cifar-10-batches-py")),
                },
            ]
        }
        Cifar100 | Cifar100Coarse => vec![
            Layout {
                format: Format::CifarBin,
                subdirs: vec!["cifar-100-binary", ""],
                needs: names(&[format!("{s}.bin")]),
                archive: Some(("cifar-100-binary.tar.gz", "cifar-100-binary")),
            },
            Layout {
                format: Format::CifarPickle,
                subdirs: vec!["cifar-100-python", ""],
                needs: names(&[s.to_string()]),
                archive: Some(("cifar-100-python.tar.gz", "cifar-100-python")),
            },
        ],
        Stl10 => {
            let mut files = vec![format!("{s}_X.bin")];
            if split != Split::Unlabeled {
                files.push(format!("{s}_y.bin"));
            }
            vec![Layout {
                format: Format::Stl,
                subdirs: vec!["stl10_binary", ""],
                needs: names(&files),
                archive: Some(("stl10_binary.tar.gz", "stl10_binary")),
            }]
        }
        Folder => Vec::new(),
    }
}

/// Where the files of a located split are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Plain (or `.gz`) files in a folder; source names are relative to `dir`.
    Files { dir: PathBuf, files: Vec<PathBuf> },
    /// Members of an official archive; source names are `<archive name>/<member>`, the archive's
    /// name taken relative to `root`.
    Archive {
        root: PathBuf,
        path: PathBuf,
        members: Vec<String>,
        /// The folder inside the archive (optional extra members live there too).
        folder: &'static str,
    },
}

/// A located split: its format and where its files are.
pub struct Found {
    pub format: Format,
    pub location: Location,
}

/// Find the files of `split` under `roots`: roots in order; in each, the extracted layouts first
/// (cheaper to read), then the official archives.
pub fn find(kind: DatasetKind, split: Split, roots: &[PathBuf]) -> Option<Found> {
    for root in roots {
        for layout in layouts(kind, split) {
            let dirs: Vec<PathBuf> = layout.subdirs.iter().map(|s| root.join(s)).collect();
            if let Some((dir, files)) = locate(&dirs, &layout.needs) {
                return Some(Found {
                    format: layout.format,
                    location: Location::Files { dir, files },
                });
            }
        }
        for layout in layouts(kind, split) {
            let Some((archive, folder)) = layout.archive else {
                continue;
            };
            let path = root.join(archive);
            if path.is_file() {
                let members = layout
                    .needs
                    .iter()
                    .map(|alts| format!("{folder}/{}", alts[0]))
                    .collect();
                return Some(Found {
                    format: layout.format,
                    location: Location::Archive {
                        root: root.clone(),
                        path,
                        members,
                        folder,
                    },
                });
            }
        }
    }
    None
}

fn download_hint(kind: DatasetKind) -> &'static str {
    use DatasetKind::*;
    match kind {
        Mnist => "https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of http://yann.lecun.com/exdb/mnist/)",
        FashionMnist => "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (or `apt-get install dataset-fashion-mnist`, which installs them into /usr/share/datasets/fashion-mnist)",
        Cifar10 => "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (or cifar-10-python.tar.gz); put the archive as it is into the data directory (no need to extract it)",
        Cifar100 | Cifar100Coarse => "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz (or cifar-100-python.tar.gz); put the archive as it is into the data directory (no need to extract it)",
        Stl10 => "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz; put the archive as it is into the data directory (no need to extract it)",
        Folder => "",
    }
}

/// The error text when the files of `split` are not found under `roots`.
pub fn missing_message(kind: DatasetKind, split: Split, roots: &[PathBuf]) -> String {
    let mut wanted = Vec::new();
    for l in layouts(kind, split) {
        let files: Vec<String> = l.needs.iter().map(|alts| alts.join(" or ")).collect();
        let dirs: Vec<String> = l
            .subdirs
            .iter()
            .map(|s| {
                if s.is_empty() {
                    "DATA_DIR/".into()
                } else {
                    format!("DATA_DIR/{s}/")
                }
            })
            .collect();
        wanted.push(format!("{} in {}", files.join(", "), dirs.join(" or ")));
        if let Some((archive, _)) = l.archive {
            wanted.push(format!("DATA_DIR/{archive}"));
        }
    }
    let looked: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    format!(
        "{} split `{}`: raw files not found (looked in {}). Put {} — DATA_DIR is the stage input \
         `data_dir`. Or set the ingest param `download = true` to fetch the official files into the \
         download cache; by hand, get them from {}",
        kind.name(),
        split.name(),
        if looked.is_empty() {
            "no data directory: none is configured".into()
        } else {
            looked.join(", ")
        },
        wanted.join("; or "),
        download_hint(kind)
    )
}
