//! The make-like runner: pipeline.toml, stage keys, planning, execution, explain.
