//! Integration tests: evaluate.
