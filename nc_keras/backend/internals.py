"""Every private Keras, TensorFlow Probability and JAX name nc_keras uses.

Keras 3 offers no public way to do these few things; each is used here, and
only here, with one test per use (tests/backend/test_internals.py), so that
an upgrade that moves one of them fails in one obvious place. The supported
range is that of pyproject.toml (keras >= 3.10, < 3.16).

Keras:
- `functional_graph`: `keras.src.models.functional.Functional` (the class
  of a functional model; `keras.Model` is its public base) and a built
  Sequential's inner Functional, `Sequential._functional`;
- `run_through_graph`: `Functional._run_through_graph`, how a functional
  model calls its operations (replayed to tap intermediate tensors);
- `initial_epoch`: `Model._initial_epoch`, set by BackupAndRestore when it
  restores a run (read by a training loop of our own);
- `flatten_layers`: `Layer._flatten_layers`, every sublayer, nested ones
  included;
- `BACKUP_METADATA_FILE`, `BACKUP_WEIGHTS_FILE`: the files BackupAndRestore
  writes its epoch and its weights into (checked whole before a resume);
- `callback_lists_holding`: the `keras.callbacks.CallbackList` of a `fit`
  that holds a callback (Keras hands callbacks no reference to it): found
  through the garbage collector's referrers of the callback, never through
  interpreter frames, so it relies only on the list's public `callbacks`;
- `OptimizerHooks`: the two private steps of `keras.optimizers.Optimizer`
  that an optimizer with coupled weight decay replaces
  (`_apply_weight_decay`, `_backend_update_step`), and its
  `_use_weight_decay` and `_get_variable_index`, under public names.

TensorFlow Probability and JAX (L-BFGS):
- `tfp_lbfgs_initial_state`: tfp's `lbfgs._get_initial_state`;
- `jax_pytype_aval_mappings`: `jax._src.core.pytype_aval_mappings`, which
  tfp's JAX substrate looks for where jax < 0.7 had it.
"""

import gc

import keras

__all__ = [
    "BACKUP_METADATA_FILE",
    "BACKUP_WEIGHTS_FILE",
    "OptimizerHooks",
    "callback_lists_holding",
    "flatten_layers",
    "functional_graph",
    "initial_epoch",
    "jax_pytype_aval_mappings",
    "run_through_graph",
    "tfp_lbfgs_initial_state",
]

# Written by keras.callbacks.BackupAndRestore next to its weights: {"epoch": e, ...}.
BACKUP_METADATA_FILE = "training_metadata.json"
# ... and its weights (with the optimizer's variables).
BACKUP_WEIGHTS_FILE = "latest.weights.h5"


def functional_graph(model):
    """The functional graph of a model: its own, a built Sequential's, or None."""
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        # A built Sequential runs an inner Functional; `model.input` may be
        # missing, its `inputs` are that graph's.
        model = getattr(model, "_functional", None)
    return model if isinstance(model, Functional) else None


def run_through_graph(graph, inputs, operation_fn):
    """Runs a functional graph on `inputs`, each operation called through
    `operation_fn(operation)` (which returns the callable to run)."""
    return graph._run_through_graph(inputs, operation_fn=operation_fn)


def initial_epoch(model):
    """The 0-based epoch a restored run resumes at (BackupAndRestore), else 0."""
    return getattr(model, "_initial_epoch", None) or 0


def flatten_layers(model):
    """Every layer inside `model`, nested models opened up (the model included)."""
    return list(model._flatten_layers())


def callback_lists_holding(callback):
    """Every live keras.callbacks.CallbackList whose `callbacks` holds `callback`.

    The list object holding the callback is found among the callback's
    referrers, and its CallbackList among that list's (directly, or through
    the instance's `__dict__` where Python keeps one). Each search walks the
    objects the garbage collector tracks: about 0.1 s in a process with a
    Keras backend loaded, once per `fit`. Empty when the callback is in no
    CallbackList (a custom loop calling `set_model` itself).
    """
    holders = []
    for held_in in gc.get_referrers(callback):
        if not isinstance(held_in, list):
            continue
        for owner in gc.get_referrers(held_in):
            if isinstance(owner, dict) and owner.get("callbacks") is held_in:
                owner = next((o for o in gc.get_referrers(owner)
                              if getattr(o, "__dict__", None) is owner), None)
            if (isinstance(owner, keras.callbacks.CallbackList)
                    and owner.callbacks is held_in and owner not in holders):
                holders.append(owner)
    return holders


class OptimizerHooks(keras.optimizers.Optimizer):
    """A Keras optimizer whose private update steps have public names.

    Subclasses override `decoupled_weight_decay(variables)` (Keras applies
    its decoupled `weight_decay` there; return without doing anything to
    skip it) and `update_all(grads, variables, learning_rate)` (all
    variables' update at once; `default_update_all` is Keras's own, which
    calls `update_step` variable by variable).
    """

    def _apply_weight_decay(self, variables):
        return self.decoupled_weight_decay(variables)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        return self.update_all(grads, trainable_variables, learning_rate)

    def decoupled_weight_decay(self, variables):
        return super()._apply_weight_decay(variables)

    def update_all(self, grads, variables, learning_rate):
        return self.default_update_all(grads, variables, learning_rate)

    def default_update_all(self, grads, variables, learning_rate):
        """Keras's update of all variables: `update_step` one by one."""
        return super()._backend_update_step(grads, variables, learning_rate)

    def decays(self, variable):
        """Whether `weight_decay` applies to `variable` (not excluded by
        `exclude_from_weight_decay`)."""
        return self._use_weight_decay(variable)

    def variable_index(self, variable):
        """The index of `variable` in the optimizer's slot lists."""
        return self._get_variable_index(variable)


def tfp_lbfgs_initial_state(lbfgs, value_and_grad_fn, x0, history, tolerance):
    """tfp's L-BFGS starting state (one gradient evaluation, empty history),
    for `lbfgs.minimize(previous_optimizer_results=...)`."""
    return lbfgs._get_initial_state(value_and_grad_fn, x0, history, tolerance)


def jax_pytype_aval_mappings():
    """JAX's table from Python types to abstract values (moved out of
    `jax.interpreters.xla` in jax 0.7)."""
    import jax._src.core

    return jax._src.core.pytype_aval_mappings
