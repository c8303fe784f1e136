//! Image grids (METHOD.md §8, pictures): rows of dataset images, each row a text label, a lead
//! tile (a cluster's prototype, or a nearest-neighbour anchor) and more tiles (the cluster's most
//! confident samples, or the anchor's mined neighbours), like the seed poster. Small images are
//! enlarged (nearest neighbour) to at least [`TILE_MIN`] pixels; tile borders encode agreement
//! (green = same class, red = different, gray = unknown, blue = anchor).

use super::prototypes::ClusterExamples;
use scan::data::Dataset;
use scan_charts::canvas::{truncate, Canvas, Rgb, BLACK, BLUE, GLYPH, GRAY, GREEN, RED, WHITE};

pub const TILE_MIN: usize = 64;
pub const BORDER: usize = 3;
pub const GAP: usize = 4;
/// Extra space between the lead tile and the others.
pub const SEP: usize = 12;
pub const LABEL_CHARS: usize = 16;
pub const LABEL_W: usize = LABEL_CHARS * GLYPH + 8;
pub const MARGIN: usize = 8;
pub const TITLE_H: usize = 24;
/// Height of one line of the row label.
pub const LINE_H: usize = 12;
pub const LABEL_LINES: usize = 3;

/// One tile: a dataset image with a coloured border.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tile {
    pub index: usize,
    pub border: Rgb,
}

/// One row of a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridRow {
    /// Up to [`LABEL_LINES`] lines, cut to [`LABEL_CHARS`] characters.
    pub label: Vec<String>,
    pub lead: Option<Tile>,
    pub tiles: Vec<Tile>,
}

/// Enlargement factor of an `h × w` image: `max(1, ⌈TILE_MIN / max(h, w)⌉)`.
pub fn scale_for(h: usize, w: usize) -> usize {
    TILE_MIN.div_ceil(h.max(w).max(1)).max(1)
}

/// Pixel size `(width, height)` of one tile (image enlarged plus border) of an `h × w` image.
pub fn tile_size(h: usize, w: usize) -> (usize, usize) {
    let s = scale_for(h, w);
    (w * s + 2 * BORDER, h * s + 2 * BORDER)
}

/// Pixel size of a grid of `rows` rows with `slots` tiles per row (the lead tile included) of
/// `h × w` images: `(2·MARGIN + LABEL_W + slots·(tw + GAP) + SEP, TITLE_H + rows·(max(th,
/// LABEL_LINES·LINE_H) + GAP) + MARGIN)`.
pub fn size(rows: usize, slots: usize, h: usize, w: usize) -> (usize, usize) {
    let (tw, th) = tile_size(h, w);
    (
        2 * MARGIN + LABEL_W + slots * (tw + GAP) + SEP,
        TITLE_H + rows * (th.max(LABEL_LINES * LINE_H) + GAP) + MARGIN,
    )
}

/// Border colour for two labels (−1 = unknown).
pub fn agreement(a: i64, b: i64) -> Rgb {
    if a < 0 || b < 0 {
        GRAY
    } else if a == b {
        GREEN
    } else {
        RED
    }
}

/// Render `rows` of images of `ds` with `slots` tile places per row (lead included).
pub fn tile_grid(ds: &Dataset, title: &str, rows: &[GridRow], slots: usize) -> Canvas {
    let (h, w) = (ds.height, ds.width);
    let (width, height) = size(rows.len(), slots, h, w);
    let (tw, th) = tile_size(h, w);
    let row_h = th.max(LABEL_LINES * LINE_H) + GAP;
    let scale = scale_for(h, w);
    let mut c = Canvas::new(width, height, WHITE);
    c.text(
        MARGIN,
        8,
        &truncate(title, (width - 2 * MARGIN) / GLYPH),
        1,
        BLACK,
    );
    for (r, row) in rows.iter().enumerate() {
        let y = TITLE_H + r * row_h;
        for (l, line) in row.label.iter().take(LABEL_LINES).enumerate() {
            c.text(
                MARGIN,
                y + l * LINE_H + 2,
                &truncate(line, LABEL_CHARS),
                1,
                BLACK,
            );
        }
        let x_lead = MARGIN + LABEL_W;
        let slots_x = (0..slots).map(|s| x_lead + s * (tw + GAP) + if s > 0 { SEP } else { 0 });
        let tiles = std::iter::once(row.lead).chain(row.tiles.iter().copied().map(Some));
        for (x, tile) in slots_x.zip(tiles) {
            let Some(t) = tile else { continue };
            let Some(img) = ds
                .images
                .get(t.index * ds.image_bytes()..(t.index + 1) * ds.image_bytes())
            else {
                continue;
            };
            c.fill_rect(x, y, tw, th, t.border);
            c.image(x + BORDER, y + BORDER, img, h, w, ds.channels, scale);
        }
    }
    c
}

fn class_name(names: &[String], c: Option<usize>) -> String {
    match c {
        Some(c) => names
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}")),
        None => "(unmatched)".into(),
    }
}

/// Rows of the prototype grid: per cluster its prototype (lead) and its most confident samples;
/// borders compare each sample's label with the class the cluster is mapped to.
pub fn prototype_rows(
    ds: &Dataset,
    examples: &[ClusterExamples],
    cluster_to_class: &[Option<usize>],
) -> Vec<GridRow> {
    examples
        .iter()
        .map(|e| {
            let mapped = cluster_to_class.get(e.cluster).copied().flatten();
            let tile = |i: usize| Tile {
                index: i,
                border: agreement(
                    ds.labels.get(i).copied().unwrap_or(-1),
                    mapped.map_or(-1, |c| c as i64),
                ),
            };
            GridRow {
                label: vec![
                    format!("cluster {}", e.cluster),
                    truncate(&class_name(&ds.meta.class_names, mapped), LABEL_CHARS),
                    format!("n = {}", e.size),
                ],
                lead: e.prototype.map(tile),
                tiles: e.top.iter().map(|&i| tile(i)).collect(),
            }
        })
        .collect()
}

/// Anchors for the neighbour grid: the first sample of each class in class order, then evenly
/// spaced samples, `count` distinct ones at most.
pub fn pick_anchors(labels: &[i64], num_classes: usize, count: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for c in 0..num_classes as i64 {
        if out.len() >= count {
            break;
        }
        if let Some(i) = labels.iter().position(|&l| l == c) {
            out.push(i);
        }
    }
    let n = labels.len();
    let want = count.min(n);
    let mut j = 0;
    while out.len() < want && j < want {
        let i = j * n / want;
        if !out.contains(&i) {
            out.push(i);
        }
        j += 1;
    }
    let mut i = 0;
    while out.len() < want {
        if !out.contains(&i) {
            out.push(i);
        }
        i += 1;
    }
    out
}

/// Rows of the neighbour grid: per anchor its image (blue) then its neighbours `neighbors(anchor)`
/// (self excluded by the caller), at most `max_neighbors`.
pub fn neighbor_rows<'a>(
    ds: &Dataset,
    anchors: &[usize],
    neighbors: impl Fn(usize) -> &'a [u32],
    max_neighbors: usize,
) -> Vec<GridRow> {
    anchors
        .iter()
        .map(|&a| {
            let la = ds.labels.get(a).copied().unwrap_or(-1);
            let nb: Vec<usize> = neighbors(a)
                .iter()
                .take(max_neighbors)
                .map(|&j| j as usize)
                .collect();
            let same = nb
                .iter()
                .filter(|&&j| la >= 0 && ds.labels.get(j) == Some(&la))
                .count();
            let name = if la >= 0 {
                class_name(&ds.meta.class_names, Some(la as usize))
            } else {
                "(unlabeled)".into()
            };
            GridRow {
                label: vec![
                    format!("anchor {a}"),
                    truncate(&name, LABEL_CHARS),
                    format!("same {same}/{}", nb.len()),
                ],
                lead: Some(Tile {
                    index: a,
                    border: BLUE,
                }),
                tiles: nb
                    .iter()
                    .map(|&j| Tile {
                        index: j,
                        border: agreement(la, ds.labels.get(j).copied().unwrap_or(-1)),
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scan::data::DatasetMeta;

    fn ds(n: usize, h: usize, w: usize, c: usize) -> Dataset {
        Dataset {
            images: (0..n * h * w * c).map(|i| (i % 251) as u8).collect(),
            labels: (0..n as i64).map(|i| i % 3).collect(),
            height: h,
            width: w,
            channels: c,
            meta: DatasetMeta {
                format_version: 1,
                dataset: "t".into(),
                split: "test".into(),
                class_names: vec!["a".into(), "b".into(), "c".into()],
                source: vec![],
            },
        }
    }

    #[test]
    fn small_images_are_enlarged() {
        assert_eq!(scale_for(28, 28), 3);
        assert_eq!(scale_for(32, 32), 2);
        assert_eq!(scale_for(96, 96), 1);
        assert_eq!(tile_size(28, 28), (84 + 2 * BORDER, 84 + 2 * BORDER));
    }

    #[test]
    fn grid_draws_the_enlarged_image() {
        let d = ds(4, 2, 3, 1);
        let rows = neighbor_rows(&d, &[0, 1], |_| &[1, 2, 3][..], 2);
        assert_eq!(rows[0].tiles.len(), 2);
        assert_eq!(rows[0].tiles[0].border, RED);
        let c = tile_grid(&d, "nn", &rows, 3);
        assert_eq!((c.width, c.height), size(2, 3, 2, 3));
        // Pixel (1, 0) of image 0 = value 1, enlarged by scale_for(2, 3) = 22.
        let s = scale_for(2, 3);
        let (x, y) = (MARGIN + LABEL_W + BORDER + s, TITLE_H + BORDER);
        assert_eq!(c.get(x, y), [1, 1, 1]);
        assert_eq!(c.get(MARGIN + LABEL_W, TITLE_H), BLUE);
    }

    #[test]
    fn anchors_cover_classes_first() {
        assert_eq!(pick_anchors(&[2, 2, 0, 1], 3, 2), vec![2, 3]);
        let a = pick_anchors(&[-1; 10], 0, 4);
        assert_eq!(a, vec![0, 2, 5, 7]);
        assert_eq!(pick_anchors(&[0, 0], 1, 5).len(), 2);
    }
}
