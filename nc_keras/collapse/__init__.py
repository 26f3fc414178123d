"""Neural-collapse metrics NC1-NC4 (Zhu et al., NeurIPS 2021, Sec. 4, "Metrics").

With K classes, class means mu_k, global mean mu_G, centred class means
Hbar = [mu_1 - mu_G, ..., mu_K - mu_G] and E = (I_K - 11^T/K)/sqrt(K-1):

    NC1 = (1/K) tr(Sigma_W Sigma_B^+)         within-class variability
    NC2 = || W W^T / ||W W^T||_F - E ||_F      classifier -> simplex ETF
    NC3 = || W Hbar / ||W Hbar||_F - E ||_F    self-duality W ~ Hbar^T
    NC4 = || b + W mu_G ||_2                   bias collapse

and the later measures: trace_ratio (tr(Sigma_W)/tr(Sigma_B), the "NC1
quotient"), cdnv, means_cos_std, means_cos_max_gap, gnc2, unc3 and
nc3_papyan (`formulas` gives each with its formula and citation).

- `formulas`: each metric as a pure function of the statistics.
- `statistics`: the result dict (`METRIC_KEYS`) from the statistics, and
  what the two ways of getting them share; `streaming`: batch by batch
  (`CollapseStatistics`); `in_memory`: from features in memory (`metrics`).
- `tiles`: K x K quantities of many classes in bounded memory (the tile
  budget, `tile_budget`).
- `probes`: which layers of a model are the classifier, the features and
  the intermediate layers measured, in any model (`probe`).
- `data_checks`: data for repeated measurements, checked before the first.
- `precision`: a mixed-precision model measured in float32 from its weights.
- `passes`: running a Keras model over data (`measure_model`, and the
  building blocks of the `NeuralCollapse` callback), on one device or many.
- `transfer`: collapse of classes the model was not trained on
  (`transfer_cdnv`: CDNV and few-shot NCC accuracy).
- `ood`: out-of-distribution scores from collapse (`neco_scores`, `auroc`).
"""

from nc_keras.collapse import data_checks, formulas, precision, probes, tiles
from nc_keras.collapse.passes import (
    CHUNK_BYTES,
    NCC_MODES,
    accumulate,
    classifier_weights,
    feature_extractor,
    gather_processes,
    iterate_batches,
    layer_key,
    measure,
    measure_model,
    ncc_pass,
)
from nc_keras.collapse.in_memory import InMemoryStatistics, metrics
from nc_keras.collapse.statistics import (
    ABSENT_CLASSES,
    FEATURE_ONLY_KEYS,
    METRIC_KEYS,
    MINORITY_KEYS,
    OOD_KEYS,
    minority_metrics,
)
from nc_keras.collapse.ood import NECO, auroc
from nc_keras.collapse.streaming import CollapseStatistics
from nc_keras.collapse.transfer import transfer_cdnv
from nc_keras.collapse.tiles import DEFAULT_TILE_BYTES, tile_budget

__all__ = [
    "ABSENT_CLASSES",
    "CHUNK_BYTES",
    "DEFAULT_TILE_BYTES",
    "FEATURE_ONLY_KEYS",
    "METRIC_KEYS",
    "MINORITY_KEYS",
    "NCC_MODES",
    "OOD_KEYS",
    "CollapseStatistics",
    "NECO",
    "InMemoryStatistics",
    "accumulate",
    "auroc",
    "classifier_weights",
    "feature_extractor",
    "formulas",
    "data_checks",
    "precision",
    "probes",
    "gather_processes",
    "iterate_batches",
    "layer_key",
    "measure",
    "measure_model",
    "metrics",
    "minority_metrics",
    "ncc_pass",
    "tile_budget",
    "tiles",
    "transfer_cdnv",
]
