"""Kernels that only the torch backend gets (as `keras/src/backend/torch/`).

- `layers`: fused convolution and batch normalization;
- `optimizers`: SGD's and Adam's updates of all variables at once.
"""
