//! Integration tests: nn.
