"""The landscape claim of Theorems 3.1 and 3.2 on the unconstrained feature model.

Many random starts times every optimizer (gd, sgd, adam, lbfgs), on the active
Keras backend (KERAS_BACKEND) in float64: every run must reach the exact global
minimum f* of Theorem 3.1 (|f - f*| <= 1e-8 |f*|) with NC2, NC3 <= 1e-4.
Prints a table, writes it and one figure to --output-dir, exits 1 if a run
missed f*.

    KERAS_BACKEND=jax .venv/bin/python recipes/ufm_landscape.py
    .venv/bin/python recipes/ufm_landscape.py --num-classes 10 --feature-dim 10 --samples-per-class 50 --starts 10
"""

import argparse
import sys
from pathlib import Path

from nc_keras import ufm
from nc_keras.cli.ufm import add_model_arguments, model_arguments


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--methods", nargs="+", choices=ufm.METHODS, default=list(ufm.METHODS))
    parser.add_argument("--starts", type=int, default=5, help="random starts per method")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first start")
    parser.add_argument("--output-dir", type=Path, default=Path("ufm_landscape"))
    args = parser.parse_args(argv)

    result = ufm.landscape(
        *model_arguments(args),
        methods=args.methods,
        starts=args.starts,
        seed=args.seed,
    )
    table = result.table()
    print(f"\nf* = {result.optimum.value:.12g} (Theorem 3.1)\n\n{table}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "landscape.md").write_text(table + "\n")
    figure = ufm.plot_landscape(result, args.output_dir / "landscape.png")
    reached = result.all_reached()
    print(f"\nall runs reached f*: {reached}; figure and table in {args.output_dir.resolve()}")
    print(f"figure: {Path(figure).resolve()}")
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
