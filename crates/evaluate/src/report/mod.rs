//! Pictures and the human-readable report of the `evaluate` stage (METHOD.md §8–§9): a small
//! RGB raster with an 8×8 bitmap font ([`canvas`]), the confusion-matrix heat map ([`heatmap`]),
//! training curves ([`curves`]), per-cluster prototypes ([`prototypes`]) and image grids
//! ([`grids`]), the published numbers ([`published`]) and `report.md` ([`markdown`]).

pub mod canvas;
pub mod curves;
pub mod grids;
pub mod heatmap;
pub mod markdown;
pub mod prototypes;
pub mod published;

pub use canvas::{Canvas, CanvasError};
pub use curves::{curves_plot, parse_curves, Curves, Series};
pub use grids::{neighbor_rows, pick_anchors, prototype_rows, tile_grid, GridRow, Tile};
pub use heatmap::confusion_heatmap;
pub use markdown::{method_label, render_markdown, Comparison, ReportInput};
pub use prototypes::{cluster_examples, ClusterExamples};
pub use published::{Published, PublishedRow, PublishedTable, PublishedTables};
