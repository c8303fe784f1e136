//! The `ingest` stage (METHOD.md §2): read one of the supported raw datasets — extracted
//! files, or the official archives as published — and write one canonical dataset artifact per split
//! (`train`, `test`, `unlabeled`). With `download = true`, missing official files are fetched into
//! the download cache first ([`super::download`], whose module doc says why the stage key stays
//! correct).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::archive::{self, member_path};
use super::artifact::FORMAT_VERSION;
use super::cifar::{self, CifarLabels};
use super::download::{self, Downloader};
use super::raw::{read_raw, relative_name, source_file, RawFile};
use super::sources::{self, Format, Found, Location};
use super::subset;
use super::{folder, idx, stl, Dataset, DatasetMeta, IngestError, SourceFile};
use crate::stage::StageArgs;

pub use scan_core::params::{DatasetKind, IngestParams, Split};

fn meta(
    kind: DatasetKind,
    split: Split,
    names: Vec<String>,
    source: Vec<SourceFile>,
) -> DatasetMeta {
    DatasetMeta {
        format_version: FORMAT_VERSION,
        dataset: kind.name().to_string(),
        split: split.name().to_string(),
        class_names: names,
        source,
    }
}

fn static_names(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn read_all(dir: &Path, files: &[PathBuf]) -> Result<Vec<RawFile>, IngestError> {
    files
        .par_iter()
        .map(|f| read_raw(f, &relative_name(dir, f)))
        .collect()
}

/// The name recorded for `member` of the archive at `path` found under `root`.
fn member_name(root: &Path, path: &Path, member: &str) -> String {
    format!("{}/{member}", relative_name(root, path))
}

/// Read the members of an archive whole, in the order of `members`.
fn read_members(root: &Path, path: &Path, members: &[String]) -> Result<Vec<RawFile>, IngestError> {
    let mut got: Vec<Option<RawFile>> = members.iter().map(|_| None).collect();
    archive::for_each_member(path, members, &[], |member, reader, size| {
        let bytes = archive::read_member(reader, size)?;
        if let Some(i) = members.iter().position(|m| m == member) {
            got[i] = Some(RawFile {
                path: member_path(path, member),
                source: source_file(&member_name(root, path, member), &bytes),
                bytes,
            });
        }
        Ok(())
    })?;
    got.into_iter()
        .zip(members)
        .map(|(f, m)| f.ok_or_else(|| IngestError::bad(member_path(path, m), "member not read")))
        .collect()
}

/// Read every file of a located split whole (IDX and CIFAR formats).
fn read_location(location: &Location) -> Result<Vec<RawFile>, IngestError> {
    match location {
        Location::Files { dir, files } => read_all(dir, files),
        Location::Archive {
            root,
            path,
            members,
            ..
        } => read_members(root, path, members),
    }
}

const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Locate the files of a split under `roots`; failing that, with a downloader, fetch the official
/// files into its cache and locate them there.
fn locate_split(
    kind: DatasetKind,
    split: Split,
    roots: &[PathBuf],
    download: Option<&Downloader>,
) -> Result<Found, IngestError> {
    if let Some(found) = sources::find(kind, split, roots) {
        return Ok(found);
    }
    let Some(dl) = download else {
        return Err(IngestError::Missing(sources::missing_message(
            kind, split, roots,
        )));
    };
    let remotes = download::official_files(kind, split);
    let dir = dl.ensure(&remotes)?;
    sources::find(kind, split, std::slice::from_ref(&dir)).ok_or_else(|| {
        IngestError::Missing(format!(
            "{} split `{}`: the downloaded files in {} do not hold it",
            kind.name(),
            split.name(),
            dir.display()
        ))
    })
}

/// Read a whole split (no subset) of a file-format dataset (not `folder`).
fn load_files(
    kind: DatasetKind,
    split: Split,
    roots: &[PathBuf],
    download: Option<&Downloader>,
) -> Result<Dataset, IngestError> {
    let found = locate_split(kind, split, roots, download)?;
    let which = match kind {
        DatasetKind::Cifar100Coarse => CifarLabels::Coarse,
        DatasetKind::Cifar100 => CifarLabels::Fine,
        _ => CifarLabels::Cifar10,
    };
    let ds = |images, labels, h, w, c, names, source| Dataset {
        images,
        labels,
        height: h,
        width: w,
        channels: c,
        meta: meta(kind, split, names, source),
    };
    Ok(match found.format {
        Format::Idx => {
            let raw = read_location(&found.location)?;
            let names = if kind == DatasetKind::Mnist {
                &MNIST_CLASSES
            } else {
                &FASHION_CLASSES
            };
            let d = idx::read_pair(&raw[0], &raw[1], names.len())?;
            let source = raw.into_iter().map(|r| r.source).collect();
            ds(
                d.images,
                d.labels,
                d.height,
                d.width,
                1,
                static_names(names),
                source,
            )
        }
        Format::CifarBin | Format::CifarPickle => {
            let raw = read_location(&found.location)?;
            let parts: Vec<cifar::CifarPart> = raw
                .par_iter()
                .map(|r| match found.format {
                    Format::CifarBin => cifar::read_bin(r, which),
                    _ => cifar::read_pickle(r, which),
                })
                .collect::<Result<_, _>>()?;
            let mut images = Vec::with_capacity(parts.iter().map(|p| p.images.len()).sum());
            let mut labels = Vec::new();
            for p in parts {
                images.extend_from_slice(&p.images);
                labels.extend_from_slice(&p.labels);
            }
            let source = raw.into_iter().map(|r| r.source).collect();
            let names = static_names(which.class_names());
            ds(images, labels, cifar::SIDE, cifar::SIDE, 3, names, source)
        }
        Format::Stl => {
            let stl = load_stl(&found.location)?;
            let names = stl
                .names
                .unwrap_or_else(|| static_names(&stl::STL10_CLASSES));
            ds(
                stl.images,
                stl.labels,
                stl::SIDE,
                stl::SIDE,
                3,
                names,
                stl.source,
            )
        }
    })
}

/// An STL-10 split as read: images, labels, class names from `class_names.txt` when present.
struct StlSplit {
    images: Vec<u8>,
    labels: Vec<i64>,
    names: Option<Vec<String>>,
    source: Vec<SourceFile>,
}

fn stl_labels(
    images: &[u8],
    x_path: &Path,
    y: Option<RawFile>,
    source: &mut Vec<SourceFile>,
) -> Result<Vec<i64>, IngestError> {
    let n = images.len() / stl::PIXELS;
    match y {
        Some(raw) => {
            let labels = stl::read_labels(&raw, n, x_path)?;
            source.push(raw.source);
            Ok(labels)
        }
        None => Ok(vec![-1; n]),
    }
}

fn stl_names(
    names: Option<RawFile>,
    source: &mut Vec<SourceFile>,
) -> Result<Option<Vec<String>>, IngestError> {
    names
        .map(|raw| {
            let names = stl::read_class_names(&raw)?;
            source.push(raw.source);
            Ok(names)
        })
        .transpose()
}

/// Read an STL-10 split: `*_X.bin` streamed, `*_y.bin` when labelled, optional `class_names.txt`.
fn load_stl(location: &Location) -> Result<StlSplit, IngestError> {
    match location {
        Location::Files { dir, files } => {
            let (images, x_src) = stl::read_images(&files[0], &relative_name(dir, &files[0]))?;
            let mut source = vec![x_src];
            let y = files
                .get(1)
                .map(|y| read_raw(y, &relative_name(dir, y)))
                .transpose()?;
            let labels = stl_labels(&images, &files[0], y, &mut source)?;
            let names_file = dir.join("class_names.txt");
            let names = if names_file.is_file() {
                Some(read_raw(&names_file, "class_names.txt")?)
            } else {
                None
            };
            let names = stl_names(names, &mut source)?;
            Ok(StlSplit {
                images,
                labels,
                names,
                source,
            })
        }
        Location::Archive {
            root,
            path,
            members,
            folder,
        } => {
            let x_member = &members[0];
            let names_member = format!("{folder}/class_names.txt");
            let mut x: Option<(Vec<u8>, SourceFile)> = None;
            let mut y: Option<RawFile> = None;
            let mut names: Option<RawFile> = None;
            archive::for_each_member(
                path,
                members,
                std::slice::from_ref(&names_member),
                |member, reader, size| {
                    let name = member_name(root, path, member);
                    if member == x_member {
                        let mpath = member_path(path, member);
                        x = Some(stl::read_images_from(reader, size, &mpath, &name)?);
                    } else {
                        let bytes = archive::read_member(reader, size)?;
                        let raw = RawFile {
                            path: member_path(path, member),
                            source: source_file(&name, &bytes),
                            bytes,
                        };
                        if member == names_member {
                            names = Some(raw);
                        } else {
                            y = Some(raw);
                        }
                    }
                    Ok(())
                },
            )?;
            let (images, x_src) =
                x.ok_or_else(|| IngestError::bad(member_path(path, x_member), "member not read"))?;
            let mut source = vec![x_src];
            let x_path = member_path(path, x_member);
            let labels = stl_labels(&images, &x_path, y, &mut source)?;
            let names = stl_names(names, &mut source)?;
            Ok(StlSplit {
                images,
                labels,
                names,
                source,
            })
        }
    }
}

/// Read a split of an image folder tree: `DATA_DIR/<split>/`, or `DATA_DIR` itself when that
/// subfolder does not exist and only one split is ingested.
fn load_folder(split: Split, roots: &[PathBuf], only: bool) -> Result<Dataset, IngestError> {
    let root = roots.first().ok_or_else(|| {
        IngestError::Missing("folder: no data directory (the stage input `data_dir`)".into())
    })?;
    let sub = root.join(split.name());
    let dir = if sub.is_dir() || !only {
        sub
    } else {
        root.clone()
    };
    if !dir.is_dir() {
        return Err(IngestError::Missing(format!(
            "folder split `{}`: {} is not a folder (put the split's images, one subfolder per \
             class or all in one folder, into DATA_DIR/{})",
            split.name(),
            dir.display(),
            split.name()
        )));
    }
    let f = folder::read_folder(root, &dir)?;
    Ok(Dataset {
        images: f.images,
        labels: f.labels,
        height: f.height,
        width: f.width,
        channels: f.channels,
        meta: meta(DatasetKind::Folder, split, f.class_names, f.sources),
    })
}

/// Read a whole split (no subset) from `data_dir` (the stage input of that name), fetching missing
/// official files with `download` when given.
pub fn load_split(
    params: &IngestParams,
    data_dir: Option<&Path>,
    split: Split,
    download: Option<&Downloader>,
) -> Result<Dataset, IngestError> {
    let roots: Vec<PathBuf> = data_dir.map(Path::to_path_buf).into_iter().collect();
    match params.dataset {
        DatasetKind::Folder => load_folder(split, &roots, params.splits.len() == 1),
        kind => load_files(kind, split, &roots, download),
    }
}

/// Apply `params.subset` to a loaded split.
fn apply_subset(params: &IngestParams, ds: Dataset) -> Result<Dataset, IngestError> {
    let Some(sub) = &params.subset else {
        return Ok(ds);
    };
    let split = params
        .splits
        .iter()
        .copied()
        .find(|s| s.name() == ds.meta.split);
    let Some(n) = split.and_then(|s| sub.size(s)) else {
        return Ok(ds);
    };
    if n > ds.len() {
        return Err(IngestError::Params(format!(
            "subset.{} = {n} but split `{}` has only {} images",
            ds.meta.split,
            ds.meta.split,
            ds.len()
        )));
    }
    let keep = subset::select(&ds.labels, n, sub.mode, sub.seed);
    Ok(subset::take(&ds, &keep))
}

/// Ingest every split of `params` from `data_dir` into `out_dir/<split>`, without downloading;
/// returns the written paths. On error no output is left behind.
pub fn ingest(
    params: &IngestParams,
    data_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, IngestError> {
    ingest_with(params, Some(data_dir), out_dir, None)
}

/// [`ingest`] with an optional data directory and an optional downloader (used when
/// `params.download` is set and the files are not in `data_dir`).
pub fn ingest_with(
    params: &IngestParams,
    data_dir: Option<&Path>,
    out_dir: &Path,
    download: Option<&Downloader>,
) -> Result<Vec<PathBuf>, IngestError> {
    use scan_core::params::StageParams;
    let download = download.filter(|_| params.download);
    params
        .validate()
        .map_err(|e| IngestError::Params(e.to_string()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| {
        let mut classes: Option<(Split, Vec<String>)> = None;
        for &split in &params.splits {
            let t = Instant::now();
            let ds = apply_subset(params, load_split(params, data_dir, split, download)?)?;
            if params.dataset == DatasetKind::Folder && !ds.meta.class_names.is_empty() {
                match &classes {
                    Some((first, names)) if *names != ds.meta.class_names => {
                        return Err(IngestError::Params(format!(
                            "folder: split `{}` has classes {:?} but split `{}` has {:?}; every \
                             labeled split must have the same class folders",
                            split.name(),
                            ds.meta.class_names,
                            first.name(),
                            names
                        )))
                    }
                    Some(_) => {}
                    None => classes = Some((split, ds.meta.class_names.clone())),
                }
            }
            let path = out_dir.join(split.name());
            ds.save(&path)?;
            written.push(path);
            eprintln!(
                "ingest: {} {}: {} images {}×{}×{}, {} classes ({:.2} s)",
                params.dataset.name(),
                split.name(),
                ds.len(),
                ds.height,
                ds.width,
                ds.channels,
                ds.num_classes(),
                t.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(written),
        Err(e) => {
            for p in &written {
                let _ = fs_err::remove_file(p);
            }
            Err(e)
        }
    }
}

/// Entry point of the `scan-ingest` binary.
pub fn run_stage(args: &StageArgs) -> anyhow::Result<()> {
    let params: IngestParams = args.load_params()?;
    let data_dir = if params.download {
        args.optional_input("data_dir")?
    } else {
        Some(args.input("data_dir")?)
    };
    let download = if params.download {
        Some(Downloader::from_env().map_err(IngestError::from)?)
    } else {
        None
    };
    ingest_with(&params, data_dir.as_deref(), &args.out, download.as_ref())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SubsetMode;
    use crate::stage::parse_params;

    fn parse(text: &str) -> Result<IngestParams, String> {
        parse_params(Path::new("p.json"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn params_defaults_and_names() {
        let p = parse("{}").unwrap();
        assert_eq!(p, IngestParams::default());
        assert_eq!(p.splits, vec![Split::Train, Split::Test]);
        let p = parse(
            r#"{"dataset": "stl10", "splits": ["train", "unlabeled"],
                "subset": {"unlabeled": 500, "mode": "first", "seed": 3}}"#,
        )
        .unwrap();
        assert_eq!(p.dataset, DatasetKind::Stl10);
        let sub = p.subset.unwrap();
        assert_eq!(
            (sub.size(Split::Unlabeled), sub.mode, sub.seed),
            (Some(500), SubsetMode::First, 3)
        );
        for name in [
            "fashion-mnist",
            "mnist",
            "cifar10",
            "cifar100-20",
            "cifar100",
            "stl10",
            "folder",
        ] {
            let p = parse(&format!(r#"{{"dataset": "{name}"}}"#)).unwrap();
            assert_eq!(p.dataset.name(), name);
        }
    }

    #[test]
    fn bad_params_are_named() {
        for (text, needle) in [
            (r#"{"dataset": "cifar-10"}"#, "dataset"),
            (r#"{"splits": ["train", "val"]}"#, "splits"),
            (r#"{"subset": {"train": 5, "sed": 1}}"#, "sed"),
            (r#"{"subset": {"train": 5, "mode": "stratified"}}"#, "mode"),
            (r#"{"split": ["train"]}"#, "split"),
            (r#"{"splits": ["train", "unlabeled"]}"#, "unlabeled"),
            (r#"{"splits": ["train", "train"]}"#, "twice"),
            (r#"{"splits": []}"#, "empty"),
            (
                r#"{"splits": ["train"], "subset": {"test": 5}}"#,
                "subset.test",
            ),
            (r#"{"subset": {"train": 0}}"#, "subset.train"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn missing_files_message_says_what_to_put_where() {
        let roots = [PathBuf::from("/nowhere/data")];
        let err = load_files(DatasetKind::Cifar10, Split::Test, &roots, None)
            .unwrap_err()
            .to_string();
        for part in [
            "test_batch.bin",
            "cifar-10-batches-bin",
            "cifar-10-batches-py",
            "/nowhere/data",
            "cifar-10-binary.tar.gz",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        let msg = sources::missing_message(DatasetKind::FashionMnist, Split::Train, &roots);
        assert!(
            msg.contains("apt-get install dataset-fashion-mnist"),
            "{msg}"
        );
        assert!(
            msg.contains("train-images-idx3-ubyte or train-images-idx3-ubyte.gz"),
            "{msg}"
        );
    }
}
