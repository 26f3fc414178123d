"""The `NeuralCollapse` callback: live neural-collapse metrics during `model.fit`."""

import math
import os

import keras
import numpy as np

from nc_keras import collapse, deprecation, validation
from nc_keras.backend import internals
from nc_keras.callbacks.collapse_summaries import CollapseSummaries
from nc_keras.collapse.passes import check_ncc
from nc_keras.collapse.statistics import CLASSIFIER_KEYS
from nc_keras.io_utils import save_npz
from nc_keras.run_folder import nc_history_epochs, nc_history_file

__all__ = ["NeuralCollapse", "log_keys"]


def _logged(validation=False, minority=False, layers=(), present=False, ood=False):
    """(result key, log key) pairs; W-only metrics are not repeated for val_.

    `minority`: with the optional `collapse.MINORITY_KEYS` (a callback given
    `minority_classes`). `layers`: names of the intermediate layers
    measured; each adds the `collapse.FEATURE_ONLY_KEYS` as "nc1/<name>", ...
    `present`: with "num_classes_present" (absent_classes="skip").
    `ood`: with `collapse.OOD_KEYS` ("nc5", and "nc5/<name>" per layer) for
    the training data (a callback given `ood_data`).
    """
    ood = ood and not validation
    keys = collapse.METRIC_KEYS + (collapse.MINORITY_KEYS if minority else ())
    keys += collapse.OOD_KEYS if ood else ()
    keys += ("num_classes_present",) if present else ()
    feature_keys = collapse.FEATURE_ONLY_KEYS + (collapse.OOD_KEYS if ood else ())
    keys += tuple(collapse.layer_key(k, name) for name in layers for k in feature_keys)
    return [(key, ("val_" if validation else "") + ("nc_accuracy" if key == "accuracy" else key))
            for key in keys if not (validation and key in CLASSIFIER_KEYS)]


def log_keys(validation=False, minority=False, layers=(), present=False, ood=False):
    """The keys `NeuralCollapse` writes into `logs` (train, or val_ ones).

    The validation keys leave out the metrics of the classifier alone (nc2,
    classifier_norm_cv): they are the same for any data. `minority`: with
    the optional minority keys (a callback given `minority_classes`).
    `layers`: names of the intermediate layers measured; each adds the
    `collapse.FEATURE_ONLY_KEYS` as "nc1/<name>", ... `present`: with
    "num_classes_present" (a callback given absent_classes="skip"). `ood`:
    with "nc5" (and "nc5/<name>" per layer), for the training data only (a
    callback given `ood_data`).
    """
    return [name for _, name in _logged(validation, minority, layers, present, ood)]


class NeuralCollapse(keras.callbacks.Callback):
    """Logs neural collapse NC1-NC4 (Zhu et al. 2021, Sec. 4 "Metrics") during `fit`.

    At the end of every `freq`-th epoch (counted from 1, and always the last
    epoch of `fit`), one pass over `train_data` (and `validation_data`)
    streams the features h the classifier consumes into a
    `nc_keras.collapse.CollapseStatistics`, reads W = kernel^T and b from the
    classifier, and writes the metrics into `logs`, so History, CSVLogger,
    TensorBoard, EarlyStopping, ... see them. With K classes, class means
    mu_k, global mean mu_G, centred means Hbar and
    E = (I_K - 11^T/K)/sqrt(K-1): NC1 = tr(Sigma_W Sigma_B^+)/K,
    NC2 = ||W W^T/||W W^T||_F - E||_F, NC3 = ||W Hbar/||W Hbar||_F - E||_F,
    NC4 = ||b + W mu_G||_2 (Sec. 4).

    With `layers`, the same pass also measures those layers' outputs: the
    metrics that need no classifier (`nc_keras.collapse.FEATURE_ONLY_KEYS`),
    NCC accuracy and rank included, drawn against depth by
    `nc-keras plot --layout depth`. With `ood_data`, one more pass logs NC5
    (Ammar et al., ICLR 2024): how far the training class means are from
    orthogonal to the mean of the out-of-distribution features.

    The classifier is the layer named "classifier", else the last layer with
    a (d, K) kernel (Dense or SimplexETF, in functional and Sequential
    models, keras.applications models and nested backbones); h is its input.
    A subclassed model needs `features=` and `classifier=`. The pass runs
    the model with training=False, draws no random number and updates no
    variable: training is the same with or without this callback. Memory is
    O(Kd + d^2) plus a chunk of outputs (`nc_keras.collapse.CHUNK_BYTES`),
    whatever the data size. Under data parallelism (a `keras.distribution`
    on JAX, a `tf.distribute.MirroredStrategy` on TensorFlow) every device
    measures a share and the statistics are merged, so the metrics equal
    one device's; every process must get the same data.

    Order: Keras hands the same `logs` to each callback in list order, so
    when `fit` (or any `keras.callbacks.CallbackList`) takes this callback,
    it moves every NeuralCollapse to the front of that list (keeping the
    others' order): the loggers see its keys wherever it stands. A custom
    loop that calls `set_model` itself, with no CallbackList, keeps its own
    order.

    Example:

    ```python
    model.fit(train, epochs=200, callbacks=[
        keras.callbacks.CSVLogger("log.csv"),
        NeuralCollapse(train_eval, validation_data=test_eval, freq=5,
                       history_dir="nc_history"),
    ])
    ```

    Args:
        train_data: a tf.data.Dataset of (x, y) or (x, y, sample_weight)
            batches (an unbatched one is batched by `batch_size`), a
            keras.utils.PyDataset, or an (x, y) or (x, y, sample_weight)
            tuple of numpy arrays, x a dict or list of arrays for several
            inputs (batched by `batch_size`). Labels are class indices in
            [0, K) for the classifier's K: integers or whole floats, (N, 1),
            or one-hot. Measure on un-augmented data in a fixed order. A
            sample weight of 0 drops a sample; other weights are not used
            (one warning). A generator (consumed by one pass) and other
            kinds are refused when the callback is made; the model must run
            on the first batch and the labels fit K (all of them for arrays,
            the first batch's otherwise), checked when training begins,
            before the first batch.
        validation_data: the same kinds, or None; its keys are "val_"
            prefixed.
        freq: measure every this many epochs (an integer >= 1; the others
            log NaN).
        max_samples: None, or an integer >= 1: measure on the first
            `max_samples` samples of each data set only (in order; no
            sampling).
        history_dir: a directory; when given, every measurement also saves
            `nc_epoch_{epoch:04d}.npz` (epoch counted from 1) with W, b (absent
            for a classifier without bias), class means, counts and correct
            counts ("train_" and "val_" prefixed), the logged metrics, the
            names of the measured `layers`, in order, and their class means
            ("train_class_means_layer0", ...). Read them back with
            `nc_keras.callbacks.load_history`. Each K x d array is 8 K d
            bytes (float64): at a vocabulary's K = 50,257 and d = 1,024,
            W and the class means take 412 MB each per measurement, so
            choose `freq` (or leave `history_dir` unset) accordingly.
        batch_size: batch size for tuple data.
        ncc: how the NCC mismatch and the NCC accuracy are counted (they
            need the class means of the whole pass): "previous" (default) against the class means of
            this callback's previous measurement on the same data, in the
            same pass (the first measurement, with none, makes a second pass
            and is exact; a fit resumed at epoch e > 0 reads them from
            `history_dir`); "exact" always makes a second pass (the
            epoch-end cost doubles); "none" logs NaN.
        tensorboard_dir: a TensorBoard log directory for images of the
            class-mean cosine matrix and of cos(w_k, mu_l - mu_G), each beside
            the simplex ETF, and histograms of the class-mean and classifier
            norms, under "neural_collapse/" (runs "train" and "validation");
            by default that of a `keras.callbacks.TensorBoard` in the same
            `fit`, if any. When no such callback writes into it, the scalars
            ("epoch_nc1", ...) are written there too.
        minority_classes: class indices M of an imbalanced training set;
            with them, the callback also logs minority_accuracy (mean
            per-class accuracy over M) and minority_cosine (mean pairwise
            cosine of the classifier rows of M; Fang et al., PNAS 2021).
        features: None (the classifier's input), a layer or layer name
            (its output; pooled if it is a map), or a callable x -> features
            (for a subclassed model; it should run in inference mode).
        classifier: None (see above), a layer or layer name with a (d, K)
            kernel; a softmax on it is fine.
        layers: intermediate layers (or names, found in nested models too;
            "outer/inner" paths where names repeat) to measure as well.
        pooling: "mean" (default: maps of rank > 2 are global-average
            pooled) or "flatten" (refused above
            `nc_keras.collapse.probes.MAX_FLATTEN_WIDTH` values per sample).
        ignore_class: a label whose samples are not measured (as in
            `keras.losses.SparseCategoricalCrossentropy`), e.g. a padding
            token; a sample weight of 0 in (x, y, w) data drops a sample too.
            Sequence models (features (B, T, d), logits (B, T, K), labels
            (B, T)) are measured at every kept position.
        absent_classes: "nan" (default) or "skip": with classes that have
            no sample (normal for a vocabulary), NaN for the class-mean
            metrics, or every metric over the classes present, logged with
            "num_classes_present" (`nc_keras.collapse.CollapseStatistics`).
        ood_data: out-of-distribution inputs (an array, or (x, y) data of
            the kinds above, labels unused): logs
            NC5 = (1/K) sum_k |<mu_k, mu_OOD>| / (||mu_k|| ||mu_OOD||), the
            mean absolute cosine between the training class means and the
            mean of the OOD features (`nc_keras.collapse.formulas.nc5`), as
            "nc5" (and "nc5/<layer name>"); NaN on epochs not measured.

    Returns:
        Nothing; at each epoch end it adds to `logs` the keys of `log_keys`:
        `nc_keras.collapse.METRIC_KEYS` (nc1, nc2, nc3, nc4, ncc_mismatch,
        nc_accuracy -- the accuracy of that pass --, means_etf_error,
        means_norm_cv, classifier_norm_cv, trace_ratio, cdnv, means_cos_std,
        means_cos_max_gap, gnc2, unc3, nc3_papyan, ncc_accuracy,
        numerical_rank, effective_rank), "val_" prefixed for
        `validation_data` except nc2 and classifier_norm_cv (W alone), the
        minority keys with `minority_classes`, and "nc1/<layer>", ... (the
        metrics that need no classifier) for each of `layers`, and
        "num_classes_present" with `absent_classes="skip"`, "nc5" and
        "nc5/<layer>" (training data only) with `ood_data`. Every key is
        there from the first epoch on, NaN on epochs not measured, so
        CSVLogger keeps all its columns.
    """

    # The former names, kept for one release (DeprecationWarning).
    test_data = deprecation.renamed_attribute("validation_data")
    every = deprecation.renamed_attribute("freq")
    history_path = deprecation.renamed_attribute("history_dir")
    layer_reduction = deprecation.renamed_attribute("pooling")

    @deprecation.renamed_arguments(test_data="validation_data", every="freq",
                                   history_path="history_dir", layer_reduction="pooling")
    def __init__(self, train_data, validation_data=None, freq=1, max_samples=None,
                 history_dir=None, *, batch_size=256, ncc="previous",
                 tensorboard_dir=None, minority_classes=None, features=None,
                 classifier=None, layers=(), pooling="mean", ignore_class=None,
                 absent_classes="nan", ood_data=None):
        super().__init__()
        if absent_classes not in collapse.ABSENT_CLASSES:
            raise ValueError(f"absent_classes must be one of {collapse.ABSENT_CLASSES}; "
                             f"got {absent_classes!r}")
        self.ignore_class = ignore_class
        self.absent_classes = absent_classes
        # Data a pass cannot read at every epoch is refused now, not after
        # the first epoch (the model-dependent checks run in on_train_begin).
        collapse.data_checks.check_kind(train_data, "train_data")
        if validation_data is not None:
            collapse.data_checks.check_kind(validation_data, "validation_data")
        self.train_data = train_data
        self.validation_data = validation_data
        if ood_data is not None:
            collapse.passes.as_unlabelled(ood_data)  # a wrong kind fails here, not after an epoch
        self.ood_data = ood_data
        self._checked = {}  # prefix -> the data as checked against the model
        self.freq = validation.count(freq, "freq")
        self.max_samples = validation.optional_count(max_samples, "max_samples")
        self.history_dir = history_dir
        self.batch_size = validation.count(batch_size, "batch_size")
        self.ncc = check_ncc(ncc, "NeuralCollapse", stacklevel=3)
        self.minority_classes = None if minority_classes is None else [int(k) for k in minority_classes]
        self.features = features
        self.classifier = classifier
        self.layers = tuple(layers)
        self.pooling = collapse.probes.check_pooling(pooling)
        self._probe = None
        self._probe_of = None
        self._predictor = None
        self._started = False
        self._previous_means = {}
        self._resuming = False
        self.tensorboard_dir = tensorboard_dir
        self._fit_tensorboard_dir = None  # of a TensorBoard in the same fit
        self._summaries = None

    def set_model(self, model):
        super().set_model(model)
        boards = []
        for callback_list in internals.callback_lists_holding(self):
            # Loggers before this callback would miss its keys: run every
            # NeuralCollapse first (a new list: the loop calling us goes on
            # over the old one).
            ordered = list(callback_list.callbacks)
            first = [c for c in ordered if isinstance(c, NeuralCollapse)]
            callback_list.callbacks = first + [c for c in ordered if not isinstance(c, NeuralCollapse)]
            boards += [str(c.log_dir) for c in ordered if isinstance(c, keras.callbacks.TensorBoard)]
        # One fit's list in practice; a TensorBoard only where all lists agree on one.
        self._fit_tensorboard_dir = boards[0] if len(set(boards)) == 1 else None

    def _summary_writer(self):
        """The `CollapseSummaries` of this fit, or None without a log directory."""
        log_dir = self.tensorboard_dir or self._fit_tensorboard_dir
        if log_dir is None or (self._predictor and self._predictor.process_index):
            return None  # one writer: the chief process
        log_dir = str(log_dir)
        if self._summaries is None or self._summaries.log_dir != log_dir:
            self.on_train_end()  # closes a writer for another directory
            # Scalars only where no TensorBoard callback of this fit writes them.
            scalars = (self._fit_tensorboard_dir is None or os.path.abspath(log_dir)
                       != os.path.abspath(self._fit_tensorboard_dir))
            self._summaries = CollapseSummaries(log_dir, scalars=scalars)
        return self._summaries

    def on_train_end(self, logs=None):
        if self._summaries is not None:
            self._summaries.close()
            self._summaries = None

    def _passes(self):
        yield "", self._checked.get("", self.train_data)
        if self.validation_data is not None:
            yield "val_", self._checked.get("val_", self.validation_data)

    @property
    def keys(self):
        minority = self.minority_classes is not None
        names = self._probe.layer_names if self._probe is not None else ()
        present = self.absent_classes == "skip"
        keys = log_keys(minority=minority, layers=names, present=present,
                        ood=self.ood_data is not None)
        if self.validation_data is not None:
            keys += log_keys(validation=True, minority=minority, layers=names, present=present)
        return keys

    def on_train_begin(self, logs=None):
        self._started = True
        self._predictor = None
        self._previous_means = {}
        self._resuming = True
        if self.history_dir:
            os.makedirs(self.history_dir, exist_ok=True)
        # A model that fit has not built yet (a Sequential or subclassed one
        # on TensorFlow) gets its probe at the first epoch end; any other
        # fails here, before training, if its layers cannot be found.
        if self.model.built:
            self._ensure_probe()

    def _ensure_probe(self):
        # Built once per model: an extractor sharing the model's layers, so
        # it always sees the current weights.
        if self._probe_of is not self.model:
            # In float32 for a mixed-precision model (`collapse.precision`).
            self._probe = collapse.precision.probe(
                self.model, self.features, self.classifier, self.layers, self.pooling)
            self._probe_of = self.model
            self._predictor = None
        # How the active distribution (if any) runs the extractor: each
        # replica a share of every batch, statistics merged across hosts.
        if self._predictor is None:
            self._predictor = self._probe.predictor()
            self._check_data()

    def _check_data(self):
        # Before the first training batch where the model is built: the
        # data runs through the model, its labels fit the classifier, and
        # an unbatched dataset is batched here.
        self._checked = {}
        raw = {"": self.train_data, "val_": self.validation_data}
        for prefix, argument in (("", "train_data"), ("val_", "validation_data")):
            if raw[prefix] is not None:
                self._checked[prefix] = collapse.data_checks.check_against_model(
                    raw[prefix], argument, self._probe, self._predictor, self.batch_size,
                    self.ignore_class)

    def on_epoch_begin(self, epoch, logs=None):
        # The first epoch of a fit that resumes a run (BackupAndRestore, or
        # initial_epoch): the "previous" class means are those of the last
        # measurement before it, saved in history_dir, so that the resumed
        # run logs what an uninterrupted one would.
        if self._resuming:
            self._resuming = False
            if epoch > 0 and self.history_dir and self.ncc == "previous":
                self._previous_means = _saved_means(self.history_dir, epoch)

    def _should_measure(self, epoch):
        last = self.params.get("epochs") if self.params else None
        return (epoch + 1) % self.freq == 0 or (last is not None and epoch + 1 == last)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        if not self._started:  # used outside fit
            self.on_train_begin()
        self._ensure_probe()
        if not self._should_measure(epoch):
            logs.update(dict.fromkeys(self.keys, math.nan))
            return
        W, b = self._probe.weights()
        saved = {"W": W} if b is None else {"W": W, "b": b}
        if self._probe.layer_names:  # their order is their depth, for plots
            saved["layers"] = np.array(self._probe.layer_names)
        summaries = self._summary_writer()
        minority = self.minority_classes is not None
        for prefix, data in self._passes():
            result, stats = self._measure(prefix, data)
            if minority:
                result.update(collapse.minority_metrics(stats, W, self.minority_classes))
            logged = {name: result[key] for key, name
                      in _logged(bool(prefix), minority, self._probe.layer_names,
                                 self.absent_classes == "skip", self.ood_data is not None)}
            logs.update(logged)
            saved.update({name: np.float64(value) for name, value in logged.items()})
            saved[(prefix or "train_") + "class_means"] = stats.class_means
            # The layers' means too (in `layers` order): a resumed fit's
            # "previous" references for their NCC accuracy.
            for index, means in enumerate(self._previous_means[prefix][1:]):
                saved[f"{prefix or 'train_'}class_means_layer{index}"] = means
            saved[(prefix or "train_") + "counts"] = stats.counts
            # Per-class accuracy = class_correct / counts (imbalanced data).
            saved[(prefix or "train_") + "class_correct"] = stats.class_correct
            if summaries is not None:
                summaries.write(epoch, prefix, stats, W, logged)
        if self.history_dir:
            save_npz(nc_history_file(self.history_dir, epoch + 1), **saved)

    def _measure(self, prefix, data):
        # "previous" without a previous measurement is the exact two passes.
        result, stats, layer_stats = collapse.measure(
            self._probe, data, batch_size=self.batch_size,
            max_samples=self.max_samples, ncc=self.ncc,
            ncc_means=self._previous_means.get(prefix), predictor=self._predictor,
            ignore_class=self.ignore_class, absent_classes=self.absent_classes,
            ood_data=None if prefix else self.ood_data)
        # Features first, then each layer's: the next measurement's references.
        self._previous_means[prefix] = [stats.class_means] + [
            part.class_means for part in layer_stats.values()]
        return result, stats


def _saved_means(history_dir, epoch):
    """The class means of the last measurement saved before 0-based `epoch`, by prefix.

    Each a list: the features' means, then each measured layer's (files
    saved before the layers' were kept hold the features' alone; the
    layers then get a second pass once).
    """
    saved = [path for number, path in nc_history_epochs(history_dir) if number <= epoch]
    if not saved:
        return {}
    previous = {}
    with np.load(saved[-1]) as npz:
        for prefix in ("", "val_"):
            name = (prefix or "train_") + "class_means"
            if name not in npz:
                continue
            means = [npz[name]]
            while f"{name}_layer{len(means) - 1}" in npz:
                means.append(npz[f"{name}_layer{len(means) - 1}"])
            previous[prefix] = means
    return previous
