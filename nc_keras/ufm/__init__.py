r"""The unconstrained feature model (UFM) of Zhu et al. (NeurIPS 2021), eq. (3).

K classes with n samples each (N = nK; or K class sizes n_k), classifier
W (K x d), features H (d x N, one column per sample, sorted by class by
`class_labels`), bias b (K):

    f(W, H, b) = (1/N) sum_{k,i} L(W h_{k,i} + b, y_k)
                 + lW/2 ||W||_F^2 + lH/2 ||H||_F^2 + lb/2 ||b||^2      (3)

with L cross-entropy (the paper's), MSE, label smoothing or focal loss
(`loss=`, `smoothing=`, `gamma=`). One module per concern:

* `theory`: `objective` (eq. (3) in `keras.ops`, differentiable on every
  backend), `optimum` (the exact global minimum: Theorem 3.1 for CE),
  `construct_optimum` (an explicit minimizer), `etf_family_point`,
  `random_start`;
* `losses`: the per-sample losses eq. (3) can average;
* `optima`: the exact minima of the other losses, with their derivations
  (`OptimumUnknownError` where none is established);
* `problem`: `Problem`, eq. (3) compiled for the active backend over one flat
  vector [vec W, vec H, b] (value, gradient, minibatch step, Hessian-vector
  product);
* `solvers`: `solve` with "gd", "sgd", "adam" or "lbfgs" from a random start,
  and how the run ended (converged, diverged, out of steps, ...);
* `descent`: the step loops `solve` runs (backtracking gradient descent,
  L-BFGS, minibatch SGD and Adam with `nc_keras.optimizers`' update rules);
* `trajectory`: the records of a run: the objective, the gap f - f*, NC1-NC4
  (`nc_keras.collapse.metrics`) and the wall time;
* `hessian`: `hessian_min_eigenvalue` by Hessian-vector products and Lanczos,
  for Theorem 3.2 (strict saddles), and `rotation_zero_modes`;
* `landscape`: many random starts times every solver, as a table;
* `minority`: `minority_collapse`, the imbalanced UFM swept over the
  imbalance ratio (Fang et al. 2021);
* `plots`: `plot_trajectory`, `plot_landscape` (`make demo`, the recipe),
  `plot_minority_collapse`.

All numbers are float64 on every backend (`nc_keras.backend.float64`);
backend-specific code (compilation, gradients, L-BFGS) is in `nc_keras.backend`.
"""

from nc_keras.ufm import losses
from nc_keras.ufm.hessian import (
    HessianEigen,
    dense_hessian,
    hessian_min_eigenvalue,
    rotation_zero_modes,
)
from nc_keras.ufm.landscape import LandscapeResult, landscape
from nc_keras.ufm.losses import LOSSES
from nc_keras.ufm.minority import MinorityResult, minority_collapse, solve_class_means
from nc_keras.ufm.plots import plot_landscape, plot_minority_collapse, plot_trajectory
from nc_keras.ufm.problem import Problem, cached_problem
from nc_keras.ufm.solvers import (
    BLOW_UP,
    CONVERGED_RELATIVE_GAP,
    METHODS,
    NC_KEYS,
    STATUSES,
    SolveResult,
    solve,
)
from nc_keras.ufm.theory import (
    DEFAULT_LAMBDA,
    Optimum,
    OptimumUnknownError,
    class_counts,
    class_labels,
    construct_optimum,
    etf_family_point,
    objective,
    optimum,
    random_start,
)

__all__ = [
    "METHODS",
    "NC_KEYS",
    "STATUSES",
    "CONVERGED_RELATIVE_GAP",
    "BLOW_UP",
    "DEFAULT_LAMBDA",
    "LOSSES",
    "losses",
    "class_counts",
    "class_labels",
    "objective",
    "Optimum",
    "OptimumUnknownError",
    "optimum",
    "construct_optimum",
    "etf_family_point",
    "random_start",
    "Problem",
    "cached_problem",
    "solve",
    "SolveResult",
    "hessian_min_eigenvalue",
    "dense_hessian",
    "HessianEigen",
    "rotation_zero_modes",
    "landscape",
    "LandscapeResult",
    "plot_trajectory",
    "plot_landscape",
    "minority_collapse",
    "MinorityResult",
    "solve_class_means",
    "plot_minority_collapse",
]
