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
- `calling_callback_list`: the `keras.callbacks.CallbackList` of a `fit`,
  found from the `set_model` call it makes (Keras hands callbacks no
  reference to it);
- `OptimizerHooks`: the two private steps of `keras.optimizers.Optimizer`
  that an optimizer with coupled weight decay replaces
  (`_apply_weight_decay`, `_backend_update_step`), and its
  `_use_weight_decay` and `_get_variable_index`, under public names.

TensorFlow Probability and JAX (L-BFGS):
- `tfp_lbfgs_initial_state`: tfp's `lbfgs._get_initial_state`;
- `jax_pytype_aval_mappings`: `jax._src.core.pytype_aval_mappings`, which
  tfp's JAX substrate looks for where jax < 0.7 had it.
"""

import inspect

import keras

__all__ = [
    "BACKUP_METADATA_FILE",
    "BACKUP_WEIGHTS_FILE",
    "OptimizerHooks",
    "calling_callback_list",
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


def calling_callback_list(depth=6):
    """The keras.callbacks.CallbackList whose `set_model` called the caller, or None.

    `CallbackList.__init__` calls every callback's `set_model` from its own
    frame, a few frames up: that frame's `self`. None when the caller was
    called some other way (a custom loop calling `set_model` itself).
    """
    frame = inspect.currentframe().f_back  # the callback's set_model
    try:
        for _ in range(depth):
            frame = frame.f_back
            if frame is None:
                return None
            caller = frame.f_locals.get("self")
            if isinstance(caller, keras.callbacks.CallbackList):
                return caller
        return None
    finally:
        del frame  # no reference cycle through the frames


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
