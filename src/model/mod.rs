//! Models and losses in candle: logistic, softmax, MLP and linear regression.
