//! Batched, seeded image augmentations on the training device (spec sections 3 and 7).
