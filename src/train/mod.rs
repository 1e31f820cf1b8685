//! The robust trainer: outer minibatch loop (candle optimisers) over an inner maximisation.
