//! Integration tests: the `ingest` stage. Every fixture is built here, in the layout the
//! format documents, with pixel values that encode (n, y, x, c) so that any transposition shows.

use std::path::{Path, PathBuf};
use std::process::Command;

use scan::data::{ingest, Dataset, DatasetKind, IngestParams, Split, SubsetMode, SubsetParams};

use super::common::{bin, run_python, Workspace};

/// The pixel value every fixture stores at image n, row y, column x, channel c.
pub(super) fn f(n: usize, y: usize, x: usize, c: usize) -> u8 {
    ((n * 31 + y * 7 + x * 13 + c * 101) % 256) as u8
}

pub(super) fn put(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub(super) fn params(dataset: DatasetKind, splits: &[Split]) -> IngestParams {
    IngestParams {
        dataset,
        splits: splits.to_vec(),
        ..IngestParams::default()
    }
}

/// Ingest into `ws/out` and load the artifacts.
pub(super) fn run(p: &IngestParams, data: &Path, ws: &Workspace) -> Vec<Dataset> {
    let out = ws.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let paths = ingest(p, data, &out).unwrap();
    paths.iter().map(|p| Dataset::load(p).unwrap()).collect()
}

pub(super) fn ingest_err(p: &IngestParams, data: &Path, ws: &Workspace) -> String {
    let out = ws.join("err-out");
    let _ = std::fs::remove_dir_all(&out);
    let err = ingest(p, data, &out).unwrap_err().to_string();
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        left.iter().all(|&n| n == 0),
        "outputs left behind after: {err}"
    );
    err
}

/// Every pixel of `ds` is `f(n0 + i, y, x, c)`.
pub(super) fn check_pixels(ds: &Dataset, n0: usize) {
    let (h, w, ch) = (ds.height, ds.width, ds.channels);
    for i in 0..ds.len() {
        for y in 0..h {
            for x in 0..w {
                for c in 0..ch {
                    let got = ds.images[((i * h + y) * w + x) * ch + c];
                    assert_eq!(got, f(n0 + i, y, x, c), "image {i} y {y} x {x} c {c}");
                }
            }
        }
    }
}

// ---------- CIFAR ----------

/// CIFAR binary records: `nlab` label bytes from `labels(n)`, then 3 planes of 32×32 row-major.
pub(super) fn cifar_bin(n0: usize, count: usize, labels: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for n in n0..n0 + count {
        out.extend(labels(n));
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    out.push(f(n, y, x, c));
                }
            }
        }
    }
    out
}

pub(super) fn cifar10_bin_dir(ws: &Workspace) -> PathBuf {
    let dir = ws.join("data/cifar-10-batches-bin");
    for i in 1..=5 {
        let b = cifar_bin(2 * (i - 1), 2, |n| vec![(n * 3 % 10) as u8]);
        put(&dir.join(format!("data_batch_{i}.bin")), &b);
    }
    put(
        &dir.join("test_batch.bin"),
        &cifar_bin(100, 3, |n| vec![(n * 3 % 10) as u8]),
    );
    ws.join("data")
}

#[test]
fn cifar10_binary_round_trip() {
    let ws = Workspace::new();
    let data = cifar10_bin_dir(&ws);
    let out = run(
        &params(DatasetKind::Cifar10, &[Split::Train, Split::Test]),
        &data,
        &ws,
    );
    let (train, test) = (&out[0], &out[1]);
    assert_eq!(
        (train.len(), train.height, train.width, train.channels),
        (10, 32, 32, 3)
    );
    check_pixels(train, 0);
    check_pixels(test, 100);
    assert_eq!(
        train.labels,
        (0..10).map(|n| (n * 3 % 10) as i64).collect::<Vec<_>>()
    );
    assert_eq!(train.meta.class_names[0], "airplane");
    assert_eq!(
        (train.meta.dataset.as_str(), test.meta.split.as_str()),
        ("cifar10", "test")
    );
    let names: Vec<_> = train.meta.source.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin"
        ]
    );
    let raw = std::fs::read(data.join("cifar-10-batches-bin/test_batch.bin")).unwrap();
    assert_eq!(
        test.meta.source[0].blake3,
        blake3::hash(&raw).to_hex().to_string()
    );
    assert_eq!(test.meta.source[0].bytes, raw.len() as u64);
}

/// Python writes CIFAR python-version pickles in the official layout (planar [N, 3072] uint8).
const PY_CIFAR: &str = r#"
import pickle, sys, numpy as np
path, n0, n, proto, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
N = np.arange(n0, n0 + n)[:, None, None, None]
C = np.arange(3)[None, :, None, None]
Y = np.arange(32)[None, None, :, None]
X = np.arange(32)[None, None, None, :]
data = ((N * 31 + Y * 7 + X * 13 + C * 101) % 256).astype(np.uint8).reshape(n, 3072)
ns = list(range(n0, n0 + n))
d = {b'batch_label': b'batch', b'data': data, b'filenames': [b'img_%d.png' % i for i in ns]}
if kind == 'cifar10':
    d[b'labels'] = [i * 3 % 10 for i in ns]
else:
    d[b'fine_labels'] = [i * 7 % 100 for i in ns]
    d[b'coarse_labels'] = [i % 20 for i in ns]
with open(path, 'wb') as fh:
    pickle.dump(d, fh, protocol=proto)
"#;

pub(super) fn py_cifar(path: &Path, n0: usize, n: usize, proto: u8, kind: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let args = [
        path.to_str().unwrap(),
        &n0.to_string(),
        &n.to_string(),
        &proto.to_string(),
        kind,
    ];
    run_python(PY_CIFAR, &args);
}

#[test]
fn cifar10_python_round_trip() {
    let ws = Workspace::new();
    let dir = ws.join("data/cifar-10-batches-py");
    for i in 1..=5 {
        // Protocol 2 as the official files; batch 5 at protocol 5 (numpy's `_frombuffer` path).
        let proto = if i == 5 { 5 } else { 2 };
        let path = dir.join(format!("data_batch_{i}"));
        py_cifar(&path, 2 * (i - 1), 2, proto, "cifar10");
    }
    // The test batch at Python 3's default protocol, to cover the modern opcodes as well.
    py_cifar(&dir.join("test_batch"), 100, 3, 4, "cifar10");
    let out = run(
        &params(DatasetKind::Cifar10, &[Split::Train, Split::Test]),
        &ws.join("data"),
        &ws,
    );
    check_pixels(&out[0], 0);
    check_pixels(&out[1], 100);
    assert_eq!(
        out[0].labels,
        (0..10).map(|n| (n * 3 % 10) as i64).collect::<Vec<_>>()
    );
    assert_eq!(out[1].labels, vec![0, 3, 6]);
    assert_eq!(out[1].meta.source[0].name, "test_batch");
}

#[test]
fn cifar100_coarse_and_fine() {
    let ws = Workspace::new();
    let labels = |n: usize| vec![(n % 20) as u8, (n * 7 % 100) as u8];
    put(
        &ws.join("bin/cifar-100-binary/train.bin"),
        &cifar_bin(0, 25, labels),
    );
    put(
        &ws.join("bin/cifar-100-binary/test.bin"),
        &cifar_bin(40, 3, labels),
    );
    py_cifar(&ws.join("py/cifar-100-python/train"), 0, 25, 2, "cifar100");
    py_cifar(&ws.join("py/cifar-100-python/test"), 40, 3, 2, "cifar100");
    for src in ["bin", "py"] {
        let both = [Split::Train, Split::Test];
        let coarse = run(
            &params(DatasetKind::Cifar100Coarse, &both),
            &ws.join(src),
            &ws,
        );
        let fine = run(&params(DatasetKind::Cifar100, &both), &ws.join(src), &ws);
        check_pixels(&coarse[0], 0);
        check_pixels(&fine[1], 40);
        assert_eq!(
            coarse[0].labels,
            (0..25).map(|n| (n % 20) as i64).collect::<Vec<_>>()
        );
        assert_eq!(
            fine[0].labels,
            (0..25).map(|n| (n * 7 % 100) as i64).collect::<Vec<_>>()
        );
        assert_eq!((coarse[0].num_classes(), fine[0].num_classes()), (20, 100));
        assert_eq!(coarse[0].meta.class_names[19], "vehicles_2");
        assert_eq!(fine[0].meta.class_names[99], "worm");
        assert_eq!(coarse[1].meta.dataset, "cifar100-20");
    }
}

#[test]
fn cifar_bad_files_are_named() {
    let ws = Workspace::new();
    let data = cifar10_bin_dir(&ws);
    let p = params(DatasetKind::Cifar10, &[Split::Train, Split::Test]);
    let b3 = data.join("cifar-10-batches-bin/data_batch_3.bin");
    let good = std::fs::read(&b3).unwrap();
    put(&b3, &good[..good.len() - 100]);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("data_batch_3.bin") && err.contains("truncated"),
        "{err}"
    );
    let mut bad = good.clone();
    bad[3073] = 10; // label of the second record
    put(&b3, &bad);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("data_batch_3.bin") && err.contains("label 10 of image 1"),
        "{err}"
    );
    // Train is fine, test is broken: no partial output (train is not left behind).
    put(&b3, &good);
    put(&data.join("cifar-10-batches-bin/test_batch.bin"), &[]);
    let err = ingest_err(&p, &data, &ws);
    assert!(err.contains("test_batch.bin"), "{err}");

    // Python version: not a pickle, a truncated pickle, a label count mismatch.
    let dir = ws.join("py/cifar-10-batches-py");
    for i in 1..=5 {
        py_cifar(&dir.join(format!("data_batch_{i}")), 0, 2, 2, "cifar10");
    }
    let p = params(DatasetKind::Cifar10, &[Split::Train]);
    let b2 = dir.join("data_batch_2");
    let good = std::fs::read(&b2).unwrap();
    put(&b2, b"this is not a pickle");
    let err = ingest_err(&p, &ws.join("py"), &ws);
    assert!(
        err.contains("data_batch_2") && err.contains("pickle"),
        "{err}"
    );
    put(&b2, &good[..good.len() / 2]);
    let err = ingest_err(&p, &ws.join("py"), &ws);
    assert!(
        err.contains("data_batch_2") && err.contains("truncated"),
        "{err}"
    );
    run_python(
        "import pickle,sys,numpy as np\nd={b'data':np.zeros((2,3072),np.uint8),b'labels':[1]}\nopen(sys.argv[1],'wb').write(pickle.dumps(d,protocol=2))",
        &[b2.to_str().unwrap()],
    );
    let err = ingest_err(&p, &ws.join("py"), &ws);
    assert!(
        err.contains("data_batch_2") && err.contains("mismatch"),
        "{err}"
    );
}

// ---------- STL-10 ----------

/// STL-10 X file: per image 3 planes of 96×96 stored column-major (x outer, y inner).
fn stl_x(n0: usize, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for n in n0..n0 + count {
        for c in 0..3 {
            for x in 0..96 {
                for y in 0..96 {
                    out.push(f(n, y, x, c));
                }
            }
        }
    }
    out
}

pub(super) fn stl_dir(ws: &Workspace) -> PathBuf {
    let dir = ws.join("data/stl10_binary");
    put(&dir.join("train_X.bin"), &stl_x(0, 3));
    put(&dir.join("train_y.bin"), &[1, 10, 4]);
    put(&dir.join("test_X.bin"), &stl_x(10, 2));
    put(&dir.join("test_y.bin"), &[2, 3]);
    put(&dir.join("unlabeled_X.bin"), &stl_x(20, 2));
    ws.join("data")
}

#[test]
fn stl10_round_trip() {
    let ws = Workspace::new();
    let data = stl_dir(&ws);
    let names = "airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\nTRUCK\n";
    put(&data.join("stl10_binary/class_names.txt"), names.as_bytes());
    let all = [Split::Train, Split::Test, Split::Unlabeled];
    let out = run(&params(DatasetKind::Stl10, &all), &data, &ws);
    assert_eq!((out[0].height, out[0].width, out[0].channels), (96, 96, 3));
    check_pixels(&out[0], 0);
    check_pixels(&out[1], 10);
    check_pixels(&out[2], 20);
    assert_eq!(out[0].labels, vec![0, 9, 3]);
    assert_eq!(out[1].labels, vec![1, 2]);
    assert_eq!(out[2].labels, vec![-1, -1]);
    assert_eq!(out[2].meta.class_names[9], "TRUCK");
    let srcs: Vec<_> = out[0].meta.source.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(srcs, ["train_X.bin", "train_y.bin", "class_names.txt"]);
}

#[test]
fn stl10_bad_files_are_named() {
    let ws = Workspace::new();
    let data = stl_dir(&ws);
    let dir = data.join("stl10_binary");
    let p = params(DatasetKind::Stl10, &[Split::Train]);
    put(&dir.join("train_y.bin"), &[1, 11, 4]);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("train_y.bin") && err.contains("label 11"),
        "{err}"
    );
    put(&dir.join("train_y.bin"), &[1, 2]);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("train_y.bin") && err.contains("mismatch"),
        "{err}"
    );
    put(&dir.join("train_y.bin"), &[1, 2, 3]);
    put(&dir.join("train_X.bin"), &stl_x(0, 3)[..27648 * 3 - 5]);
    let err = ingest_err(&p, &data, &ws);
    assert!(err.contains("train_X.bin") && err.contains("size"), "{err}");
    // `unlabeled` is an STL-10 split only.
    let err = ingest_err(
        &params(DatasetKind::Cifar10, &[Split::Unlabeled]),
        &data,
        &ws,
    );
    assert!(err.contains("unlabeled"), "{err}");
}

// ---------- IDX ----------

fn idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// IDX images of 5 rows × 4 columns (non-square, so that a transposition shows).
fn idx_images(n0: usize, n: usize) -> Vec<u8> {
    let px: Vec<u8> = (n0..n0 + n)
        .flat_map(|i| (0..5).flat_map(move |y| (0..4).map(move |x| f(i, y, x, 0))))
        .collect();
    idx(&[n, 5, 4], &px)
}

/// MNIST-style files: train gzipped, test plain.
fn idx_dir(ws: &Workspace) -> PathBuf {
    let dir = ws.join("data");
    put(
        &dir.join("train-images-idx3-ubyte.gz"),
        &gz(&idx_images(0, 6)),
    );
    put(
        &dir.join("train-labels-idx1-ubyte.gz"),
        &gz(&idx(&[6], &[5, 0, 4, 1, 9, 2])),
    );
    put(&dir.join("t10k-images-idx3-ubyte"), &idx_images(50, 2));
    put(&dir.join("t10k-labels-idx1-ubyte"), &idx(&[2], &[7, 2]));
    dir
}

#[test]
fn idx_gz_and_plain_round_trip() {
    let ws = Workspace::new();
    let data = idx_dir(&ws);
    let out = run(
        &params(DatasetKind::Mnist, &[Split::Train, Split::Test]),
        &data,
        &ws,
    );
    assert_eq!(
        (out[0].len(), out[0].height, out[0].width, out[0].channels),
        (6, 5, 4, 1)
    );
    check_pixels(&out[0], 0);
    check_pixels(&out[1], 50);
    assert_eq!(out[0].labels, vec![5, 0, 4, 1, 9, 2]);
    assert_eq!(out[1].labels, vec![7, 2]);
    assert_eq!(out[0].meta.source[0].name, "train-images-idx3-ubyte.gz");
    let disk = std::fs::read(data.join("train-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(
        out[0].meta.source[0].blake3,
        blake3::hash(&disk).to_hex().to_string()
    );
}

#[test]
fn idx_bad_files_are_named() {
    let ws = Workspace::new();
    let data = idx_dir(&ws);
    let p = params(DatasetKind::Mnist, &[Split::Test]);
    let (img, lab) = (
        data.join("t10k-images-idx3-ubyte"),
        data.join("t10k-labels-idx1-ubyte"),
    );
    let good = idx_images(50, 2);
    put(&img, &good[..good.len() - 1]);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("t10k-images-idx3-ubyte") && err.contains("truncated"),
        "{err}"
    );
    let mut bad = good.clone();
    bad[3] = 1;
    put(&img, &bad);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("t10k-images-idx3-ubyte") && err.contains("magic"),
        "{err}"
    );
    put(&img, &good);
    put(&lab, &idx(&[3], &[1, 2, 3]));
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("t10k-labels-idx1-ubyte") && err.contains("mismatch"),
        "{err}"
    );
    put(&lab, &idx(&[2], &[1, 10]));
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("t10k-labels-idx1-ubyte") && err.contains("label 10"),
        "{err}"
    );
    // A truncated gzip stream.
    let tr = data.join("train-images-idx3-ubyte.gz");
    let z = std::fs::read(&tr).unwrap();
    put(&tr, &z[..z.len() / 2]);
    let err = ingest_err(&params(DatasetKind::Mnist, &[Split::Train]), &data, &ws);
    assert!(
        err.contains("train-images-idx3-ubyte.gz") && err.contains("truncated"),
        "{err}"
    );
    // Missing files: the message says which files to put where.
    let empty = ws.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = ingest_err(&p, &empty, &ws);
    assert!(
        err.contains("t10k-images-idx3-ubyte") && err.contains(empty.to_str().unwrap()),
        "{err}"
    );
}

// ---------- Folders ----------

fn png(path: &Path, n: usize, h: usize, w: usize, grey: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if grey {
        let img = image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
            image::Luma([f(n, y as usize, x as usize, 0)])
        });
        img.save(path).unwrap();
    } else {
        let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let (y, x) = (y as usize, x as usize);
            image::Rgb([f(n, y, x, 0), f(n, y, x, 1), f(n, y, x, 2)])
        });
        img.save(path).unwrap();
    }
}

#[test]
fn folder_class_tree_and_flat() {
    let ws = Workspace::new();
    let data = ws.join("data");
    // Class order is by folder name, file order by file name.
    png(&data.join("train/dog/a.png"), 2, 3, 4, false);
    png(&data.join("train/cat/b.png"), 1, 3, 4, false);
    png(&data.join("train/cat/a.png"), 0, 3, 4, false);
    std::fs::write(data.join("train/cat/notes.txt"), "ignored").unwrap();
    png(&data.join("test/cat/z.png"), 10, 3, 4, false);
    png(&data.join("test/dog/y.png"), 11, 3, 4, false);
    let out = run(
        &params(DatasetKind::Folder, &[Split::Train, Split::Test]),
        &data,
        &ws,
    );
    assert_eq!(
        (out[0].len(), out[0].height, out[0].width, out[0].channels),
        (3, 3, 4, 3)
    );
    check_pixels(&out[0], 0);
    check_pixels(&out[1], 10);
    assert_eq!(out[0].labels, vec![0, 0, 1]);
    assert_eq!(out[0].meta.class_names, vec!["cat", "dog"]);
    let srcs: Vec<_> = out[0].meta.source.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        srcs,
        ["train/cat/a.png", "train/cat/b.png", "train/dog/a.png"]
    );

    // A flat grey folder is one unlabeled split.
    let flat = ws.join("flat");
    for n in 0..3 {
        png(&flat.join(format!("img{n}.png")), n, 5, 2, true);
    }
    let out = run(&params(DatasetKind::Folder, &[Split::Train]), &flat, &ws);
    assert_eq!(
        (out[0].len(), out[0].height, out[0].width, out[0].channels),
        (3, 5, 2, 1)
    );
    check_pixels(&out[0], 0);
    assert_eq!(out[0].labels, vec![-1; 3]);
    assert!(out[0].meta.class_names.is_empty());

    // JPEG (lossy): a uniform colour decodes to nearly that colour.
    let jpg = ws.join("jpg");
    std::fs::create_dir_all(&jpg).unwrap();
    for (i, v) in [40u8, 200].into_iter().enumerate() {
        let img = image::RgbImage::from_pixel(8, 6, image::Rgb([v, v / 2, 255 - v]));
        img.save(jpg.join(format!("{i}.JPG"))).unwrap();
    }
    let out = run(&params(DatasetKind::Folder, &[Split::Train]), &jpg, &ws);
    assert_eq!(
        (out[0].len(), out[0].height, out[0].width, out[0].channels),
        (2, 6, 8, 3)
    );
    let px = &out[0].images[8 * 6 * 3..8 * 6 * 3 + 3];
    assert!(
        px.iter()
            .zip([200u8, 100, 55])
            .all(|(&a, b)| a.abs_diff(b) <= 3),
        "{px:?}"
    );
}

#[test]
fn folder_bad_input_is_named() {
    let ws = Workspace::new();
    let p = params(DatasetKind::Folder, &[Split::Train]);
    let data = ws.join("data");
    std::fs::create_dir_all(data.join("train")).unwrap();
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("train") && err.contains("empty folder"),
        "{err}"
    );
    png(&data.join("train/cat/a.png"), 0, 3, 4, false);
    std::fs::create_dir_all(data.join("train/dog")).unwrap();
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("train/dog") && err.contains("no PNG/JPEG images"),
        "{err}"
    );
    std::fs::write(
        data.join("train/dog/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("broken.png") && err.contains("decode"),
        "{err}"
    );
    png(&data.join("train/dog/broken.png"), 1, 4, 4, false);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("broken.png") && err.contains("share one size"),
        "{err}"
    );
    png(&data.join("train/dog/broken.png"), 1, 3, 4, true);
    let err = ingest_err(&p, &data, &ws);
    assert!(
        err.contains("broken.png") && err.contains("channel"),
        "{err}"
    );
}

// ---------- Subsets ----------

#[test]
fn subset_random_is_stratified_and_ordered() {
    let ws = Workspace::new();
    let dir = ws.join("data");
    // 40 training images, labels 0,1,2,3 in blocks of 10; 10 test images.
    let labels: Vec<u8> = (0..40).map(|i| (i / 10) as u8).collect();
    put(&dir.join("train-images-idx3-ubyte"), &idx_images(0, 40));
    put(&dir.join("train-labels-idx1-ubyte"), &idx(&[40], &labels));
    put(&dir.join("t10k-images-idx3-ubyte"), &idx_images(100, 10));
    put(&dir.join("t10k-labels-idx1-ubyte"), &idx(&[10], &[0; 10]));
    let mut p = params(DatasetKind::Mnist, &[Split::Train, Split::Test]);
    p.subset = Some(SubsetParams {
        train: Some(8),
        seed: 3,
        ..SubsetParams::default()
    });
    let out = run(&p, &dir, &ws);
    let (train, test) = (&out[0], &out[1]);
    assert_eq!((train.len(), test.len()), (8, 10));
    for l in 0..4 {
        assert_eq!(
            train.labels.iter().filter(|&&x| x == l).count(),
            2,
            "{:?}",
            train.labels
        );
    }
    // Recover each kept image's original index from its pixels: increasing, and labels match.
    let idx_of: Vec<usize> = (0..8)
        .map(|i| {
            (0..40)
                .find(|&n| {
                    train.images[i * 20] == f(n, 0, 0, 0)
                        && train.images[i * 20 + 19] == f(n, 4, 3, 0)
                })
                .unwrap()
        })
        .collect();
    assert!(idx_of.windows(2).all(|w| w[0] < w[1]), "{idx_of:?}");
    assert!(idx_of
        .iter()
        .zip(&train.labels)
        .all(|(&n, &l)| (n / 10) as i64 == l));
    assert_ne!(
        idx_of,
        vec![0, 1, 10, 11, 20, 21, 30, 31],
        "looks like first-per-class, not random"
    );
    let again = run(&p, &dir, &ws);
    assert_eq!(again[0], *train);
    // mode first; and a subset larger than the split is an error.
    p.subset = Some(SubsetParams {
        test: Some(3),
        mode: SubsetMode::First,
        ..SubsetParams::default()
    });
    let out = run(&p, &dir, &ws);
    check_pixels(&out[1], 100);
    assert_eq!((out[0].len(), out[1].len()), (40, 3));
    p.subset = Some(SubsetParams {
        test: Some(11),
        ..SubsetParams::default()
    });
    let err = ingest_err(&p, &dir, &ws);
    assert!(
        err.contains("subset.test") && err.contains("10 images"),
        "{err}"
    );
}

// ---------- Official archives, read in place ----------

/// Pack `staging/<folder>` into the `.tar.gz` `out` with Python's tarfile, as the official archives
/// are made (directory entries included, members under `<folder>/`).
pub(super) fn make_tgz(staging: &Path, folder: &str, out: &Path) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    run_python(
        "import sys, tarfile\nwith tarfile.open(sys.argv[1], 'w:gz') as t:\n    t.add(sys.argv[2], arcname=sys.argv[3])",
        &[
            out.to_str().unwrap(),
            staging.join(folder).to_str().unwrap(),
            folder,
        ],
    );
}

/// Ingest `extracted` and `archived` (a folder holding only the archive) and check that both give
/// the same images and labels, and that the archive's source records name its members.
fn same_as_extracted(
    p: &IngestParams,
    extracted: &Path,
    archived: &Path,
    archive: &str,
    ws: &Workspace,
) -> Vec<Dataset> {
    let want = run(p, extracted, ws);
    let got = run(p, archived, ws);
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!((&w.images, &w.labels), (&g.images, &g.labels), "{archive}");
        assert_eq!(w.meta.class_names, g.meta.class_names);
        assert_eq!(w.meta.source.len(), g.meta.source.len(), "{archive}");
        for (ws_, gs) in w.meta.source.iter().zip(&g.meta.source) {
            // Same member bytes: same checksum; the name says where in the archive.
            assert_eq!(
                (&ws_.blake3, ws_.bytes),
                (&gs.blake3, gs.bytes),
                "{}",
                gs.name
            );
            assert!(
                gs.name.starts_with(&format!("{archive}/")) && gs.name.ends_with(&ws_.name),
                "{} vs {}",
                gs.name,
                ws_.name
            );
        }
    }
    got
}

#[test]
fn official_archives_are_read_without_extracting() {
    let ws = Workspace::new();
    let both = [Split::Train, Split::Test];
    // CIFAR-10 binary, with the extra files the official archive holds.
    let data = cifar10_bin_dir(&ws);
    put(
        &data.join("cifar-10-batches-bin/batches.meta.txt"),
        b"airplane\n",
    );
    put(&data.join("cifar-10-batches-bin/readme.html"), b"<html>");
    make_tgz(
        &data,
        "cifar-10-batches-bin",
        &ws.join("a/cifar-10-binary.tar.gz"),
    );
    let out = same_as_extracted(
        &params(DatasetKind::Cifar10, &both),
        &data,
        &ws.join("a"),
        "cifar-10-binary.tar.gz",
        &ws,
    );
    check_pixels(&out[1], 100);
    assert_eq!(
        out[1].meta.source[0].name,
        "cifar-10-binary.tar.gz/cifar-10-batches-bin/test_batch.bin"
    );

    // CIFAR-10 python.
    let py = ws.join("py10");
    for i in 1..=5 {
        py_cifar(
            &py.join(format!("cifar-10-batches-py/data_batch_{i}")),
            2 * (i - 1),
            2,
            2,
            "cifar10",
        );
    }
    py_cifar(
        &py.join("cifar-10-batches-py/test_batch"),
        100,
        3,
        2,
        "cifar10",
    );
    put(&py.join("cifar-10-batches-py/batches.meta"), b"meta");
    make_tgz(
        &py,
        "cifar-10-batches-py",
        &ws.join("b/cifar-10-python.tar.gz"),
    );
    same_as_extracted(
        &params(DatasetKind::Cifar10, &both),
        &py,
        &ws.join("b"),
        "cifar-10-python.tar.gz",
        &ws,
    );

    // CIFAR-100 binary and python, coarse and fine labels.
    let labels = |n: usize| vec![(n % 20) as u8, (n * 7 % 100) as u8];
    let bin = ws.join("bin100");
    put(
        &bin.join("cifar-100-binary/train.bin"),
        &cifar_bin(0, 25, labels),
    );
    put(
        &bin.join("cifar-100-binary/test.bin"),
        &cifar_bin(40, 3, labels),
    );
    put(
        &bin.join("cifar-100-binary/fine_label_names.txt"),
        b"apple\n",
    );
    make_tgz(
        &bin,
        "cifar-100-binary",
        &ws.join("c/cifar-100-binary.tar.gz"),
    );
    let py = ws.join("py100");
    py_cifar(&py.join("cifar-100-python/train"), 0, 25, 2, "cifar100");
    py_cifar(&py.join("cifar-100-python/test"), 40, 3, 2, "cifar100");
    make_tgz(
        &py,
        "cifar-100-python",
        &ws.join("d/cifar-100-python.tar.gz"),
    );
    for kind in [DatasetKind::Cifar100Coarse, DatasetKind::Cifar100] {
        let p = params(kind, &both);
        same_as_extracted(&p, &bin, &ws.join("c"), "cifar-100-binary.tar.gz", &ws);
        let out = same_as_extracted(&p, &py, &ws.join("d"), "cifar-100-python.tar.gz", &ws);
        check_pixels(&out[0], 0);
    }

    // STL-10, all three splits, class names from the archive.
    let stl = stl_dir(&ws);
    let names = "airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\nTRUCK\n";
    put(&stl.join("stl10_binary/class_names.txt"), names.as_bytes());
    put(&stl.join("stl10_binary/fold_indices.txt"), b"0 1\n");
    make_tgz(&stl, "stl10_binary", &ws.join("e/stl10_binary.tar.gz"));
    let all = [Split::Train, Split::Test, Split::Unlabeled];
    let out = same_as_extracted(
        &params(DatasetKind::Stl10, &all),
        &stl,
        &ws.join("e"),
        "stl10_binary.tar.gz",
        &ws,
    );
    check_pixels(&out[2], 20);
    assert_eq!(out[0].meta.class_names[9], "TRUCK");
    assert_eq!(out[2].labels, vec![-1, -1]);

    // MNIST / Fashion-MNIST are published as four .gz files: read as they are
    // (`idx_gz_and_plain_round_trip`); here all four gzipped, as downloaded.
    let gzs = ws.join("gz");
    put(
        &gzs.join("train-images-idx3-ubyte.gz"),
        &gz(&idx_images(0, 6)),
    );
    put(
        &gzs.join("train-labels-idx1-ubyte.gz"),
        &gz(&idx(&[6], &[5, 0, 4, 1, 9, 2])),
    );
    put(
        &gzs.join("t10k-images-idx3-ubyte.gz"),
        &gz(&idx_images(50, 2)),
    );
    put(
        &gzs.join("t10k-labels-idx1-ubyte.gz"),
        &gz(&idx(&[2], &[7, 2])),
    );
    let out = run(&params(DatasetKind::FashionMnist, &both), &gzs, &ws);
    check_pixels(&out[1], 50);
    assert_eq!(out[1].meta.source[1].name, "t10k-labels-idx1-ubyte.gz");

    // A damaged archive is one error naming it, and nothing is written.
    let a = ws.join("a/cifar-10-binary.tar.gz");
    let bytes = std::fs::read(&a).unwrap();
    put(&a, &bytes[..bytes.len() / 3]);
    let err = ingest_err(&params(DatasetKind::Cifar10, &both), &ws.join("a"), &ws);
    assert!(
        err.contains("cifar-10-binary.tar.gz") && err.contains("truncated or corrupt"),
        "{err}"
    );
    // An archive without the expected members (not the official one).
    make_tgz(&stl, "stl10_binary", &a);
    let err = ingest_err(&params(DatasetKind::Cifar10, &both), &ws.join("a"), &ws);
    assert!(
        err.contains("cifar-10-binary.tar.gz") && err.contains("no member"),
        "{err}"
    );
}

// ---------- Real Fashion-MNIST ----------

#[test]
fn real_fashion_mnist_from_debian_package() {
    let deb = Path::new("/usr/share/datasets/fashion-mnist");
    assert!(
        deb.join("train-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist"
    );
    let ws = Workspace::new();
    let t = std::time::Instant::now();
    let out = ingest(&IngestParams::default(), deb, &ws.join("out")).unwrap();
    eprintln!("fashion-mnist ingest: {:.2} s", t.elapsed().as_secs_f64());
    let train = Dataset::load(&out[0]).unwrap();
    let test = Dataset::load(&out[1]).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!((train.height, train.width, train.channels), (28, 28, 1));
    for (ds, per_class) in [(&train, 6000), (&test, 1000)] {
        for c in 0..10 {
            assert_eq!(ds.labels.iter().filter(|&&l| l == c).count(), per_class);
        }
    }
    assert_eq!(train.meta.class_names[9], "Ankle boot");
    // Oracle: Python's gzip + numpy read the test images independently.
    let raw = ws.join("oracle.bin");
    run_python(
        "import gzip,sys,numpy as np\nb=gzip.open(sys.argv[1]).read()\nassert int.from_bytes(b[:4],'big')==2051\nnp.frombuffer(b,np.uint8,offset=16).tofile(sys.argv[2])",
        &[deb.join("t10k-images-idx3-ubyte.gz").to_str().unwrap(), raw.to_str().unwrap()],
    );
    assert!(
        std::fs::read(&raw).unwrap() == test.images,
        "test pixels differ from the oracle"
    );
}

// ---------- The stage binary ----------

#[test]
fn stage_binary_end_to_end() {
    let ws = Workspace::new();
    let data = idx_dir(&ws);
    let params = ws.write(
        "params.json",
        r#"{"dataset": "mnist", "subset": {"train": 4, "mode": "first"}}"#,
    );
    let out = ws.join("stage-out");
    std::fs::create_dir_all(&out).unwrap();
    let run = |params: &Path| {
        Command::new(bin("scan-ingest"))
            .arg("--out")
            .arg(&out)
            .arg("--params")
            .arg(params)
            .arg("--input")
            .arg(format!("data_dir={}", data.display()))
            .env_remove("SCAN_DATA_DIR")
            .output()
            .unwrap()
    };
    let o = run(&params);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let train = Dataset::load(&out.join("train")).unwrap();
    assert_eq!(train.labels, vec![5, 0, 4, 1]);
    check_pixels(&train, 0);
    assert_eq!(Dataset::load(&out.join("test")).unwrap().len(), 2);
    // A typo in the params is named; bad data fails with exit code 1 and the file named.
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let typo = ws.write("typo.json", r#"{"dataset": "mnist", "split": ["train"]}"#);
    let o = run(&typo);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("split"));
    put(&data.join("t10k-labels-idx1-ubyte"), b"garbage");
    let o = run(&params);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("t10k-labels-idx1-ubyte"), "{err}");
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "partial output left behind"
    );
}
