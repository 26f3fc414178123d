"""Keras callbacks: live neural-collapse metrics during `model.fit`, and logs.

- `NeuralCollapse` (neural_collapse.py): NC1-NC4 at epoch ends, into `logs`;
  its TensorBoard images and histograms in collapse_summaries.py.
- `EpochCSVLogger` (epoch_csv_logger.py): one CSV row per epoch, exactly once.
- `read_csv_log`, `load_history` (logs.py): read back what they write.
"""

from nc_keras.callbacks.epoch_csv_logger import EpochCSVLogger
from nc_keras.callbacks.logs import load_history, read_csv_log
from nc_keras.callbacks.neural_collapse import NeuralCollapse, log_keys

__all__ = ["EpochCSVLogger", "NeuralCollapse", "load_history", "log_keys", "read_csv_log"]
