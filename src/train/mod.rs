//! Training stages: pretext, embed, scan clustering, self-labeling (spec sections 3-6).
