"""Data parallelism: several devices, processes and hosts.

`replicate` picks the backend's engine for training (JAX's
`keras.distribution.DataParallel`, TensorFlow's `MirroredStrategy`; Keras
has none for torch) and `sharded_predictor` runs a model's forward pass
under it, so that neural-collapse statistics can be gathered from every
replica.
"""

import contextlib
import dataclasses
import os

import keras
import numpy as np

from nc_keras.backend.core import name

STRATEGIES = ("auto", "none", "data_parallel")

# Environment variables that configure a multi-process JAX run; they are read
# by `keras.distribution.initialize` itself.
_KERAS_MULTI_PROCESS_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES")


@dataclasses.dataclass
class Replication:
    """Where a run's model replicas live (from `replicate`).

    Attributes:
        scope: context manager in which to build, compile and fit the model.
        replicas: model replicas over all processes (devices per process
            times processes); 1 for a plain single-device run.
        process_index: this process's rank, 0 on the chief.
        process_count: number of processes (hosts) taking part.
    """

    scope: object
    replicas: int = 1
    process_index: int = 0
    process_count: int = 1


def check_replication(strategy, devices):
    """Raises a ValueError for an unknown `strategy` or a `devices` below 1."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    if devices is not None and int(devices) < 1:
        raise ValueError(f"devices must be a positive integer or None; got {devices}.")


def replicate(strategy="auto", devices=None, coordinator=None, num_processes=None, process_id=None):
    """Selects the backend's data-parallel engine; returns a `Replication`.

    * jax: `keras.distribution.DataParallel` over the first `devices` local
      devices of every process. A multi-process run (one process per host,
      or per GPU) is set up first by `keras.distribution.initialize`, which
      calls `jax.distributed.initialize`, when `coordinator` ("host:port" of
      process 0) or the `KERAS_DISTRIBUTION_JOB_ADDRESSES` environment
      variable is given; this must happen before any JAX computation.
    * tensorflow: `tf.distribute.MirroredStrategy` over the first `devices`
      local GPUs (or logical CPU devices when there is no GPU). With
      `TF_CONFIG` set, a `ValueError`: Keras 3's `fit` fails under
      `MultiWorkerMirroredStrategy` (see `_tf_replicate`).
    * torch: Keras has no data-parallel `fit` for torch: a `ValueError`
      points to the other backends.

    Args:
        strategy: "auto" (data parallel when `devices` > 1 or a multi-process
            run is configured, else none), "none" (one device) or
            "data_parallel" (`devices` defaults to every local device).
        devices: local devices per process; None: one, or all of them with
            "data_parallel" or in a multi-process run.
        coordinator, num_processes, process_id: multi-process JAX only.
    """
    check_replication(strategy, devices)
    multi_process = _multi_process_requested(coordinator)
    if (num_processes is not None or process_id is not None) and not multi_process:
        raise ValueError(
            "num_processes and process_id describe a multi-process JAX run: give "
            "coordinator (host:port of process 0) too."
        )
    if strategy == "none":
        if (devices or 1) > 1 or multi_process:
            raise ValueError(
                "strategy 'none' trains on one device in one process; use strategy "
                "'data_parallel' (or 'auto') for several devices or processes."
            )
        return Replication(contextlib.nullcontext())
    if strategy == "auto" and (devices or 1) == 1 and not multi_process:
        return Replication(contextlib.nullcontext())
    backend = name()
    if backend == "jax":
        return _jax_replicate(devices, coordinator, num_processes, process_id)
    if backend == "tensorflow" and coordinator:
        raise ValueError(
            "coordinator, num_processes and process_id are JAX options; TensorFlow "
            "reads its cluster from the TF_CONFIG environment variable."
        )
    if backend == "tensorflow":
        return _tf_replicate(devices)
    raise ValueError(
        f"data-parallel training (devices={devices}, strategy={strategy!r}) is not "
        f"available on the {backend} backend: Keras 3 has no multi-device `fit` "
        "for torch. Run with KERAS_BACKEND=jax (keras.distribution.DataParallel) or "
        "KERAS_BACKEND=tensorflow (tf.distribute.MirroredStrategy); the saved "
        ".keras models load on torch. Or train on one device: devices=None."
    )


def process_index():
    """This process's rank in a multi-process run; 0 when there is one process.

    Only JAX runs several processes here (`replicate`); its rank is known
    once `jax.distributed` has started, i.e. after `replicate`.
    """
    if name() == "jax":
        import jax

        return jax.process_index()
    return 0


def _multi_process_requested(coordinator):
    if coordinator:
        return True
    if name() == "tensorflow":
        return bool(os.environ.get("TF_CONFIG"))
    if name() == "jax":
        import jax

        return jax.distributed.is_initialized() or any(
            os.environ.get(variable) for variable in _KERAS_MULTI_PROCESS_ENV
        )
    return False


def _jax_replicate(devices, coordinator, num_processes, process_id):
    import jax

    if _multi_process_requested(coordinator) and not jax.distributed.is_initialized():
        try:
            keras.distribution.initialize(coordinator, num_processes, process_id)
        except RuntimeError as error:
            raise ValueError(
                "a multi-process JAX run must be set up before any JAX computation: "
                f"call train() (or keras.distribution.initialize) first ({error})."
            ) from error
    available = len(jax.local_devices())
    count = available if devices is None else int(devices)
    if count > available:
        raise ValueError(
            f"devices={count}, but JAX sees {available} local device(s) "
            f"({jax.local_devices()}); on CPU, XLA_FLAGS="
            f"--xla_force_host_platform_device_count={count} makes more."
        )
    # The first `count` local devices of every process, processes in order,
    # so each process feeds a contiguous share of every global batch.
    per_process = {}
    for device in jax.devices():
        per_process.setdefault(device.process_index, []).append(device)
    chosen = [device for rank in sorted(per_process) for device in per_process[rank][:count]]
    distribution = keras.distribution.DataParallel(devices=chosen)
    return Replication(
        distribution.scope(), len(chosen), jax.process_index(), jax.process_count()
    )


def _tf_replicate(devices):
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        # Tried on two localhost workers: Keras 3.15's `fit` builds the model
        # with `strategy.reduce` over the whole (x, y) batch, which
        # MultiWorkerMirroredStrategy rejects ("Attempt to convert a value
        # (PerReplica...) to a Tensor"), so fail early and say so.
        raise ValueError(
            "TF_CONFIG is set, but Keras 3's model.fit cannot train under "
            "tf.distribute.MultiWorkerMirroredStrategy (its first step calls "
            "strategy.reduce on the (x, y) batch, which that strategy rejects). For "
            "several hosts use KERAS_BACKEND=jax with --coordinator; on one host, "
            "unset TF_CONFIG and use --devices (MirroredStrategy)."
        )
    available = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    count = len(available) if devices is None else int(devices)
    if count > len(available):
        raise ValueError(
            f"devices={count}, but TensorFlow sees {len(available)} local "
            f"device(s) ({[d.name for d in available]}); CPU devices can be "
            "split with tf.config.set_logical_device_configuration."
        )
    strategy = tf.distribute.MirroredStrategy([d.name for d in available[:count]])
    return Replication(strategy.scope(), strategy.num_replicas_in_sync)


@dataclasses.dataclass
class ShardedPredictor:
    """A model's forward pass as the active distribution runs it.

    Attributes:
        predict: `predict(x)` -> numpy output(s) of the rows of `x`, this
            process's share of a global batch; `len(x)` must be the same on
            every process and a multiple of `local_replicas`.
        allgather: `allgather(vector)` -> (process_count, n) float64 array
            of every process's `vector` (float64, same length everywhere), in
            process order, identical on every process.
        local_replicas, process_index, process_count: as in `Replication`.
    """

    predict: object
    allgather: object = None
    local_replicas: int = 1
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if self.allgather is None:
            self.allgather = lambda vector: np.asarray(vector, np.float64)[None]


def sharded_predictor(model, extractor):
    """How to run `extractor` (sharing `model`'s layers) data-parallel.

    With no distribution (JAX: `keras.distribution.distribution()` is None;
    TensorFlow: `model`'s strategy has one replica; torch always), the plain
    `extractor.predict_on_batch`. Otherwise every local replica runs its
    share of the batch, and `allgather` exchanges data between processes.
    """
    backend = name()
    predictor = None
    if backend == "jax":
        predictor = _jax_predictor(extractor)
    elif backend == "tensorflow":
        predictor = _tf_predictor(model, extractor)
    return predictor or ShardedPredictor(extractor.predict_on_batch)


def function_predictor(function):
    """A `ShardedPredictor` for a plain callable x -> features, on one device.

    For models without a graph (subclassed), whose features come from the
    user's callable; torch records no gradients for it (as
    `predict_on_batch` does not). Data parallelism needs a graph to shard.
    """
    no_grad = contextlib.nullcontext
    if name() == "torch":
        import torch

        no_grad = torch.no_grad

    def predict(x):
        with no_grad():
            return [np.asarray(keras.ops.convert_to_numpy(function(x)))]

    return ShardedPredictor(predict)


def _jax_predictor(extractor):
    import jax

    distribution = keras.distribution.distribution()
    if distribution is None:
        return None
    mesh = distribution.device_mesh.backend_mesh
    local = sum(device.process_index == jax.process_index() for device in mesh.devices.flat)

    @jax.jit
    def forward(trainable, non_trainable, x):
        return extractor.stateless_call(trainable, non_trainable, x, training=False)[0]

    def predict(x):
        shape = keras.tree.flatten(x)[0].shape
        sharding = distribution.get_data_layout(shape).backend_layout
        # This process's rows of the global batch that its local data forms.
        spans = sharding.addressable_devices_indices_map(
            (shape[0] * jax.process_count(),) + tuple(shape[1:])
        ).values()
        start = min(index[0].start or 0 for index in spans)
        x = keras.tree.map_structure(
            lambda part: jax.make_array_from_process_local_data(sharding, part), x
        )
        outputs = keras.tree.flatten(forward(
            [v.value for v in extractor.trainable_variables],
            [v.value for v in extractor.non_trainable_variables],
            x,
        ))
        return [_jax_process_rows(output, start, start + shape[0]) for output in outputs]

    def allgather(vector):
        from jax.experimental import multihost_utils

        # Exchanged as raw bits: without x64 mode JAX would round float64
        # statistics to float32.
        bits = np.ascontiguousarray(vector, np.float64).view(np.uint32)
        return np.asarray(multihost_utils.process_allgather(bits)).view(np.float64)

    several = jax.process_count() > 1
    return ShardedPredictor(predict, allgather if several else None, local,
                            jax.process_index(), jax.process_count())


def _jax_process_rows(array, start, stop):
    """Rows [start, stop) of a global jax.Array, read from this process's shards."""
    pieces = {}
    for shard in array.addressable_shards:
        begin, end, _ = shard.index[0].indices(array.shape[0])
        if begin < stop and end > start and begin not in pieces:  # replicas repeat
            pieces[begin] = np.asarray(shard.data)[max(start - begin, 0):min(stop, end) - begin]
    return np.concatenate([pieces[begin] for begin in sorted(pieces)])


def _tf_predictor(model, extractor):
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return None
    local = len(strategy.extended.worker_devices)
    if local != strategy.num_replicas_in_sync:
        raise ValueError(
            "NC measurement under a multi-worker tf.distribute strategy is not "
            "supported (nor is Keras' fit under it); use KERAS_BACKEND=jax for several hosts."
        )

    # Not `extractor.predict_on_batch`: under a strategy it hands the whole
    # batch to every replica and concatenates the copies.
    @tf.function(reduce_retracing=True)
    def forward(x):
        return strategy.run(lambda part: extractor(part, training=False), args=(x,))

    def predict(x):
        size = len(keras.tree.flatten(x)[0]) // local
        x = strategy.experimental_distribute_values_from_function(
            lambda context: keras.tree.map_structure(
                lambda a: a[context.replica_id_in_sync_group * size:][:size], x
            )
        )
        return [
            np.concatenate([np.asarray(part) for part in strategy.experimental_local_results(output)])
            for output in keras.tree.flatten(forward(x))
        ]

    return ShardedPredictor(predict, local_replicas=local)
