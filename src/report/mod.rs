//! Pictures and the human-readable report (spec section 8-9).
