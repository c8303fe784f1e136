//! Pictures and the human-readable report of the `evaluate` stage (METHOD.md §8–9): charts drawn
//! with `plotters` and an embedded font ([`chart`]) — the confusion-matrix heat map ([`heatmap`])
//! and the training curves ([`curves`]) —, per-cluster prototypes ([`prototypes`]) and image grids
//! ([`grids`]) on a small RGB raster ([`canvas`], which also encodes every PNG deterministically),
//! the published numbers ([`published`]) and `report.md` ([`markdown`]).

pub mod canvas;
pub mod chart;
pub mod curves;
pub mod grids;
pub mod heatmap;
pub mod markdown;
pub mod prototypes;
pub mod published;

pub use canvas::{Canvas, CanvasError};
pub use curves::{curves_plot, panels, parse_curves, Curves, Panel, Series};
pub use grids::{neighbor_rows, pick_anchors, prototype_rows, tile_grid, GridRow, Tile};
pub use heatmap::confusion_heatmap;
pub use markdown::{method_label, render_markdown, Comparison, ReportInput};
pub use prototypes::{cluster_examples, ClusterExamples};
pub use published::{Published, PublishedRow, PublishedTable, PublishedTables};
