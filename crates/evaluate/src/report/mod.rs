//! The human-readable report of the `evaluate` stage (METHOD.md §8–9): per-cluster prototypes
//! ([`prototypes`]) and image grids ([`grids`]), the published numbers ([`published`]) and
//! `report.md` ([`markdown`]). The charts (training curves, the confusion heat map) and the raster
//! every PNG is encoded from come from the `scan-charts` crate, re-exported here.

pub mod grids;
pub mod markdown;
pub mod prototypes;
pub mod published;

pub use grids::{neighbor_rows, pick_anchors, prototype_rows, tile_grid, GridRow, Tile};
pub use markdown::{method_label, render_markdown, Comparison, ReportInput};
pub use prototypes::{cluster_examples, ClusterExamples};
pub use published::{Published, PublishedRow, PublishedTable, PublishedTables};
pub use scan_charts::{
    canvas, chart, confusion_heatmap, curves, curves_plot, heatmap, panels, parse_curves, Canvas,
    CanvasError, Curves, Panel, Series,
};
