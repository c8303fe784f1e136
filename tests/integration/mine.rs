//! Integration tests: mine.
