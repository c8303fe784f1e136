//! Integration tests: augment.
