//! Stage `evaluate` (spec section 8).
