"""Out-of-distribution detection from neural collapse: `NECO` and `auroc`.

Ammar et al. (ICLR 2024, "NECO: NEural Collapse based Out-of-distribution
detection") observe that collapse makes the in-distribution (ID) features
lie near the span of their class means, and the features of
out-of-distribution (OOD) inputs nearly orthogonal to it (their NC5,
logged by `NeuralCollapse(ood_data=...)` and `measure_model(ood_data=...)`).
Their score of an input with features h is the share of its norm in the
principal subspace of the ID features,

    NECO(h) = ||P h|| / ||h||,

P the projection on the first d' principal directions: higher means "in
distribution". `NECO` fits P from one streamed pass over ID data (the d x d
covariance of `CollapseStatistics`, no features kept) and scores any data;
`auroc` says how well the scores separate ID from OOD samples.

Example:

```python
neco = nc_keras.collapse.NECO(model, (x_train, y_train))
auroc = nc_keras.collapse.auroc(neco(x_test), neco(x_ood))
```
"""

import numpy as np

from nc_keras.collapse import formulas, passes, probes
from nc_keras.collapse.formulas import auroc
from nc_keras.collapse.streaming import CollapseStatistics

__all__ = ["NECO", "auroc"]


class NECO:
    """The NECO score of Ammar et al. (ICLR 2024), fitted on in-distribution data.

    NECO(h) = ||P (h - c)|| / ||h - c|| (`formulas.neco_score`), P the
    projection on the `num_directions` principal directions of the ID
    features' covariance Sigma_T (from the streamed statistics,
    `CollapseStatistics.principal_directions`) and c = 0, or the ID global
    mean with `center=True` (public implementations standardize and centre
    the features before their PCA; the paper's formula does neither: see
    `formulas.neco_score`).

    Args:
        model: a trained Keras model (`nc_keras.collapse.probes.probe`).
        id_data: in-distribution data with labels ((x, y) arrays, a
            tf.data.Dataset or a keras.utils.PyDataset), e.g. the training set.
        num_directions: d'; default K - 1, the span of the centred class
            means under neural collapse.
        center: subtract the ID global mean before projecting.
        max_logit: multiply the score by the largest logit max_k (W h + b)_k,
            as the paper does for vision transformers.
        features, classifier, pooling: as `measure_model`.
        batch_size, max_samples: as `measure_model` (for `id_data`).

    Calling the object on data (an array of inputs, or data of the kinds
    above; labels unused) returns the (N,) float64 scores in data order.
    """

    def __init__(self, model, id_data, num_directions=None, *, center=False, max_logit=False,
                 features=None, classifier=None, pooling="mean", batch_size=256,
                 max_samples=None):
        self.probe = probes.probe(model, features, classifier, (), pooling)
        self.batch_size = batch_size
        self.max_logit = bool(max_logit)
        W, b = self.probe.weights()
        predictor = self.probe.predictor()
        stats = passes.accumulate(
            predictor, id_data, W, b, batch_size=batch_size, max_samples=max_samples,
            stats=[CollapseStatistics(*W.shape)])[0]
        if predictor.process_count > 1:
            stats = passes.gather_processes(stats, predictor.allgather)
        if stats.num_samples == 0:
            raise ValueError("id_data holds no sample")
        self.statistics = stats
        self.components = stats.principal_directions(num_directions)
        self.center = stats.global_mean() if center else None

    def __call__(self, data, max_samples=None):
        W, b = self.probe.weights()
        scores = []
        for outputs, _ in passes._chunks(self.probe.predictor(), passes.as_unlabelled(data),
                                         self.batch_size, max_samples):
            h = outputs[0].astype(np.float64)
            score = formulas.neco_score(h, self.components, self.center)
            if self.max_logit:
                logits = h @ W.T + (0.0 if b is None else b)
                score = score * logits.max(axis=1)
            scores.append(score)
        return np.concatenate(scores) if scores else np.zeros(0)
