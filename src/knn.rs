//! Exact k-nearest-neighbour search (spec section 4).
