//! CIFAR-10 and CIFAR-100 readers: the binary version (records of label byte(s) + 3072
//! channel-planar pixels: 1024 R, 1024 G, 1024 B, each row-major 32×32) and the python version
//! (pickled dict with `data`: uint8 [N, 3072] in the same planar layout, and label lists). Both are
//! converted to HWC. CIFAR-100 carries a coarse (20 superclasses, "CIFAR-100-20") and a fine (100)
//! label per image.

use rayon::prelude::*;

use super::raw::RawFile;
use super::IngestError;
use super::{numpy, pickle};

pub const SIDE: usize = 32;
pub const PIXELS: usize = SIDE * SIDE * 3;

/// Which labels to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarLabels {
    /// CIFAR-10's one label.
    Cifar10,
    /// CIFAR-100's 20 superclasses.
    Coarse,
    /// CIFAR-100's 100 classes.
    Fine,
}

impl CifarLabels {
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            CifarLabels::Cifar10 => &CIFAR10_CLASSES,
            CifarLabels::Coarse => &CIFAR100_COARSE,
            CifarLabels::Fine => &CIFAR100_FINE,
        }
    }
    /// Label bytes before the pixels of a binary record, and the offset of ours among them.
    fn binary_labels(self) -> (usize, usize) {
        match self {
            CifarLabels::Cifar10 => (1, 0),
            CifarLabels::Coarse => (2, 0),
            CifarLabels::Fine => (2, 1),
        }
    }
    fn pickle_key(self) -> &'static str {
        match self {
            CifarLabels::Cifar10 => "labels",
            CifarLabels::Coarse => "coarse_labels",
            CifarLabels::Fine => "fine_labels",
        }
    }
}

/// Images (HWC, 32×32×3) and labels of one file.
pub struct CifarPart {
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
}

/// Channel-planar `[3, 32, 32]` → `[32, 32, 3]`.
fn planar_to_hwc(src: &[u8], dst: &mut [u8]) {
    let plane = SIDE * SIDE;
    for (p, px) in dst.chunks_exact_mut(3).enumerate() {
        px[0] = src[p];
        px[1] = src[plane + p];
        px[2] = src[2 * plane + p];
    }
}

fn check_labels(file: &RawFile, labels: &[i64], k: usize) -> Result<(), IngestError> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l < 0 || l as usize >= k)
    {
        Some((i, l)) => Err(IngestError::bad(
            &file.path,
            format!("label {l} of image {i} is out of range 0..{k}"),
        )),
        None => Ok(()),
    }
}

/// Read a binary-version file.
pub fn read_bin(file: &RawFile, which: CifarLabels) -> Result<CifarPart, IngestError> {
    let (nlab, off) = which.binary_labels();
    let rec = nlab + PIXELS;
    let b = &file.bytes;
    if b.is_empty() || !b.len().is_multiple_of(rec) {
        return Err(IngestError::bad(
            &file.path,
            format!(
                "wrong size: {} bytes is not a positive multiple of the {rec}-byte record \
                 ({nlab} label byte(s) + 3072 pixels); truncated or not a {} binary file?",
                b.len(),
                if which == CifarLabels::Cifar10 {
                    "CIFAR-10"
                } else {
                    "CIFAR-100"
                }
            ),
        ));
    }
    let n = b.len() / rec;
    let labels: Vec<i64> = b.chunks_exact(rec).map(|r| r[off] as i64).collect();
    check_labels(file, &labels, which.class_names().len())?;
    let mut images = vec![0u8; n * PIXELS];
    images
        .par_chunks_mut(PIXELS)
        .zip(b.par_chunks(rec))
        .for_each(|(dst, r)| planar_to_hwc(&r[nlab..], dst));
    Ok(CifarPart { images, labels })
}

/// Read a python-version (pickle) file.
pub fn read_pickle(file: &RawFile, which: CifarLabels) -> Result<CifarPart, IngestError> {
    let bad = |m: String| IngestError::bad(&file.path, m);
    let v = pickle::parse(&file.bytes).map_err(|e| bad(format!("not a readable pickle: {e}")))?;
    let data = v
        .get("data")
        .ok_or_else(|| bad("the pickled dict has no `data` entry".into()))?;
    let arr = numpy::ndarray(data).map_err(|e| bad(format!("`data`: {e}")))?;
    if arr.shape.len() != 2 || arr.shape[1] != PIXELS {
        return Err(bad(format!(
            "`data` has shape {:?}, expected [N, {PIXELS}]",
            arr.shape
        )));
    }
    let key = which.pickle_key();
    let labels: Vec<i64> = match v.get(key) {
        Some(pickle::Value::List(items)) => items
            .iter()
            .map(|x| match x {
                pickle::Value::Int(i) => Ok(*i),
                other => Err(bad(format!("`{key}` holds a non-integer {other:?}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(format!("`{key}` is not a list"))),
        None => return Err(bad(format!("the pickled dict has no `{key}` entry"))),
    };
    let n = arr.shape[0];
    if labels.len() != n {
        return Err(bad(format!(
            "{} labels for {n} images (image/label count mismatch)",
            labels.len()
        )));
    }
    check_labels(file, &labels, which.class_names().len())?;
    let mut images = vec![0u8; n * PIXELS];
    images
        .par_chunks_mut(PIXELS)
        .zip(arr.data.par_chunks(PIXELS))
        .for_each(|(dst, src)| planar_to_hwc(src, dst));
    Ok(CifarPart { images, labels })
}

pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

pub const CIFAR100_COARSE: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

pub const CIFAR100_FINE: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_name_lists_are_complete_and_sorted() {
        for names in [&CIFAR100_FINE[..], &CIFAR100_COARSE[..]] {
            let mut s = names.to_vec();
            s.sort();
            s.dedup();
            assert_eq!(s, names);
        }
    }

    #[test]
    fn planar_becomes_interleaved() {
        let src: Vec<u8> = (0..PIXELS)
            .map(|i| (i / 1024 * 100 + i % 1024 % 7) as u8)
            .collect();
        let mut dst = vec![0; PIXELS];
        planar_to_hwc(&src, &mut dst);
        // pixel p=9 (y=0, x=9): channels from the three planes.
        assert_eq!(&dst[27..30], &[2, 102, 202]);
    }
}
