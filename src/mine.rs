//! Stage `mine`: k-NN mining of embeddings (spec section 4).
