"""`nc-keras ufm`: solve the unconstrained feature model (eq. (3)) once."""

import argparse
import contextlib
import math
from pathlib import Path

DESCRIPTION = """\
Minimize the unconstrained feature model of Zhu et al. (2021), eq. (3),

  f(W, H, b) = (1/N) sum CE(W h + b, y) + lW/2 |W|^2 + lH/2 |H|^2 + lb/2 |b|^2,

from a random start with one optimizer, on the active Keras backend
(KERAS_BACKEND) in float64. Prints progress while it runs, then a table with
the gap f - f* to the exact global minimum of Theorem 3.1, NC1-NC4 and the
smallest Hessian eigenvalue at the end point (Theorem 3.2: >= 0 up to
round-off at a global minimizer, negative at every other critical point), and
saves a figure of the gap and NC1-NC4 per iteration (log scale).
"""


def register(subparsers):
    parser = subparsers.add_parser(
        "ufm",
        help="solve the unconstrained feature model, compare with its exact optimum",
        description=DESCRIPTION,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, max_help_position=32
        ),
    )
    from nc_keras.cli import add_deprecated_option
    from nc_keras.ufm import METHODS

    add_model_arguments(parser)
    add = parser.add_argument
    add(
        "--method",
        choices=METHODS,
        default="lbfgs",
        help="optimizer: full-batch gradient descent with Armijo steps (gd), "
        "minibatch SGD with momentum 0.9 (sgd) or Adam (adam), each ended by a "
        "full-batch gd polish, or L-BFGS with history 10 (lbfgs: tfp's on "
        "tensorflow/jax, torch.optim.LBFGS with strong Wolfe on torch) (default: lbfgs)",
    )
    add("--seed", type=int, default=0, help="seed of the random start (default: 0)")
    add(
        "--init-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="standard deviation of the random start's entries (default: 1.0)",
    )
    add(
        "--steps",
        type=int,
        default=None,
        help="iteration budget: gd 20000, lbfgs 2000, sgd/adam 1000 minibatch "
        "steps before the polish (default: per method)",
    )
    add(
        "--learning-rate",
        type=float,
        default=None,
        metavar="LR",
        help="learning rate of sgd (default 0.5) or adam (default 0.1); "
        "divided by 10 at 50%% and 75%% of --steps",
    )
    add_deprecated_option(parser, "--lr", "--learning-rate", "learning_rate", type=float)
    add(
        "--batch-size",
        type=int,
        default=None,
        help="minibatch size of sgd/adam (default: N/10)",
    )
    add(
        "--gradient-tolerance",
        type=float,
        default=1e-9,
        metavar="TOL",
        help="stop when the largest gradient entry is at most TOL (default: 1e-9)",
    )
    add(
        "--no-polish",
        action="store_true",
        help="sgd/adam: skip the final full-batch phase (they then stop near "
        "a relative gap of 1e-4, the minibatch noise floor)",
    )
    add(
        "--print-every",
        type=int,
        default=10,
        metavar="R",
        help="print a progress line every R recorded points (default: 10)",
    )
    add(
        "--hessian-k",
        type=int,
        default=1,
        metavar="K",
        help="how many of the smallest Hessian eigenvalues to report; 0 skips "
        "the Lanczos check (default: 1)",
    )
    add(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="figure file (PNG, PDF, SVG) (default: ufm-METHOD-K{K}-d{D}-n{N}.png "
        "in the current directory)",
    )
    parser.set_defaults(func=run)


def add_model_arguments(parser):
    """The options that define one UFM instance of eq. (3): --num-classes,
    --feature-dim, --samples-per-class, --lambda-w, --lambda-h, --lambda-b
    (also used by recipes/ufm_landscape.py); `model_arguments` reads them
    back. The former --classes, --dim and --per-class still work, with a
    deprecation note."""
    from nc_keras.cli import add_deprecated_option
    from nc_keras.ufm import DEFAULT_LAMBDA

    add = parser.add_argument
    add(
        "--num-classes",
        type=int,
        default=10,
        metavar="K",
        help="number of classes K (default: %(default)s)",
    )
    add(
        "--feature-dim",
        type=int,
        default=20,
        metavar="D",
        help="feature dimension d >= K-1 (default: %(default)s)",
    )
    add(
        "--samples-per-class",
        type=int,
        default=30,
        metavar="N",
        help="samples per class n, balanced (default: %(default)s)",
    )
    for old, new in (("--classes", "--num-classes"), ("--dim", "--feature-dim"),
                     ("--per-class", "--samples-per-class")):
        add_deprecated_option(parser, old, new, new[2:].replace("-", "_"), type=int)
    for name, what in (("w", "the classifier W"), ("h", "the features H"), ("b", "the bias b")):
        add(
            f"--lambda-{name}",
            type=float,
            default=DEFAULT_LAMBDA,
            metavar="L",
            help=f"weight decay on {what} (default: %(default)g)",
        )


def model_arguments(args):
    """(K, d, n, lambda_w, lambda_h, lambda_b) from `add_model_arguments`' options,
    in the order `nc_keras.ufm.solve` and `landscape` take them."""
    return (args.num_classes, args.feature_dim, args.samples_per_class,
            args.lambda_w, args.lambda_h, args.lambda_b)


def run(args):
    from nc_keras import cli, ufm
    from nc_keras.reporting import format_table

    _check(args, cli.UserError)
    K, d, n = args.num_classes, args.feature_dim, args.samples_per_class
    with _user_errors(cli):
        best = ufm.optimum(K, n, args.lambda_w, args.lambda_h, args.lambda_b)
    where = "the origin" if best.at_origin else f"row norm w* = {best.w_norm:.6g}, |h*| = {best.h_norm:.6g}"
    print(
        f"UFM K={K} d={d} n={n}, lambdas "
        f"{args.lambda_w:g}/{args.lambda_h:g}/{args.lambda_b:g}: f* = {best.value:.12g} at {where}"
    )
    with _user_errors(cli):
        result = _solve(args, ufm)
    final = result.final
    row = {
        "method": result.method,
        "gap": final["gap"],
        "relative_gap": final["relative_gap"],
        **{key: final[key] for key in ufm.NC_KEYS},
        "steps": result.steps,
        "polish": result.polish_steps,
        "seconds": result.seconds,
    }
    columns = ["method", ("gap", "f - f*"), ("relative_gap", "(f-f*)/f*"), *ufm.NC_KEYS]
    if args.hessian_k > 0:
        eigen = ufm.hessian_min_eigenvalue(
            result.W,
            result.H,
            result.b,
            result.labels,
            args.lambda_w,
            args.lambda_h,
            args.lambda_b,
            k=args.hessian_k,
        )
        row["hessian_min"] = float(eigen.eigenvalues[0])
        columns.append(("hessian_min", "min Hessian eig"))
    columns += ["steps", "polish", "seconds"]
    formats = {key: ".2e" for key in ("gap", "relative_gap", "hessian_min", *ufm.NC_KEYS)}
    formats["seconds"] = ".2f"
    print()
    print(format_table([row], columns, formats))
    if args.hessian_k > 1:
        print("smallest Hessian eigenvalues:", " ".join(f"{v:.3e}" for v in eigen.eigenvalues))
    if args.hessian_k > 0 and not best.at_origin:
        zero_modes = ufm.rotation_zero_modes(K, d, args.lambda_b)
        print(
            f"(at a global minimizer the Hessian has {zero_modes} zero eigenvalues from "
            "the O(d) rotation symmetry, so the smallest is 0 up to round-off)"
        )
    output = args.output or Path(f"ufm-{args.method}-K{K}-d{d}-n{n}.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    ufm.plot_trajectory(result, output)
    print(f"figure: {output.resolve()}")
    return 0


def _solve(args, ufm):
    """`ufm.solve` with the options, printing progress as it records."""
    print(f"solving with {args.method} from random start {args.seed} ...", flush=True)
    counter = {"records": 0}

    def progress(method, row):
        counter["records"] += 1
        if counter["records"] % args.print_every == 1 or args.print_every == 1:
            metrics = "  ".join(f"{k.upper()} {row.get(k, math.nan):.2e}" for k in ufm.NC_KEYS)
            print(
                f"  [{row['phase']:>6}] iter {row['step']:>6}  f-f* {row['gap']:.3e}  "
                f"{metrics}  {row['seconds']:.2f} s",
                flush=True,
            )

    result = ufm.solve(
        *model_arguments(args),
        method=args.method,
        seed=args.seed,
        steps=args.steps,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        gradient_tolerance=args.gradient_tolerance,
        polish=not args.no_polish,
        init_scale=args.init_scale,
        progress=progress,
    )
    return result


# The ufm functions' argument names, as the options that set them.
_FLAGS = {
    "num_classes": "--num-classes",
    "feature_dim": "--feature-dim",
    "n_per_class": "--samples-per-class",
    "learning_rate": "--learning-rate",
    "batch_size": "--batch-size",
    "gradient_tolerance": "--gradient-tolerance",
    "init_scale": "--init-scale",
    "lambda_w": "--lambda-w",
    "lambda_h": "--lambda-h",
    "lambda_b": "--lambda-b",
}


@contextlib.contextmanager
def _user_errors(cli):
    """ufm checks its own arguments: its ValueError becomes the one error line."""
    try:
        yield
    except ValueError as error:
        raise cli.UserError(cli.in_flags(error, _FLAGS)) from error


def _check(args, UserError):
    """What only the command asks (`ufm.solve` checks the rest)."""
    K, d = args.num_classes, args.feature_dim
    # The figure and table compare with f* of Theorem 3.1, which needs d >= K - 1.
    if K >= 2 and d < K - 1:
        raise UserError(
            f"--feature-dim must be at least --num-classes - 1 = {K - 1} (a simplex "
            f"ETF of K vectors spans K-1 dimensions); got {d}"
        )
    for name in ("print_every", "hessian_k"):
        value = getattr(args, name)
        least = 1 if name == "print_every" else 0
        if value < least:
            raise UserError(f"--{name.replace('_', '-')} must be at least {least}; got {value}")
