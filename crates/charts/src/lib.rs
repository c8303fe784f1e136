//! The charts of `scan`, torch-free so that both the `evaluate` stage and the `scan` binary draw
//! them: an RGB raster that encodes every PNG deterministically ([`canvas`]), the `plotters` set-up
//! with the embedded DejaVu Sans font ([`chart`]), training curves ([`curves`]), the confusion-matrix
//! heat map ([`heatmap`]) and the comparison of experiments — curves of several runs overlaid and the
//! final metrics as bars with error bars ([`experiments`]).

pub mod canvas;
pub mod chart;
pub mod curves;
pub mod experiments;
pub mod heatmap;

pub use canvas::{Canvas, CanvasError};
pub use curves::{curves_plot, panels, parse_curves, Curves, Panel, Series};
pub use experiments::{metrics_bars, overlay_plot, Bar, BarGroup, Run};
pub use heatmap::confusion_heatmap;
