"""`nc-keras params`: the parameter-savings table of Sec. 4.3."""

import argparse
import json


def register(subparsers):
    parser = subparsers.add_parser(
        "params",
        help="print the paper's trainable-parameter savings (Sec. 4.3)",
        description=(
            "Build the paper's networks (torchvision layout) and print the "
            "trainable parameters saved by a fixed simplex-ETF classifier "
            "(ResNet50 and DenseNet169, ImageNet, K=1000) and by d = K "
            "(ResNet18 and ResNet50, CIFAR-10, K=10), next to the paper's "
            "8.01%, 11.76%, 20.70% and 4.45%. Takes about 30 s on a CPU."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser):
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the rows as JSON instead of a table",
    )


def default_args():
    return argparse.Namespace(json=False)


def run(args):
    from nc_keras.models import parameter_savings
    from nc_keras.reporting import format_table

    rows = parameter_savings()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("Trainable parameters (Zhu et al. 2021, Sec. 4.3; torchvision layout):")
    print(
        format_table(
            rows,
            [
                "model",
                "dataset",
                ("num_classes", "K"),
                "variant",
                ("baseline_params", "baseline"),
                ("variant_params", "with variant"),
                ("reduction_percent", "reduction %"),
                ("paper_percent", "paper %"),
            ],
            formats={
                "baseline_params": ",d",
                "variant_params": ",d",
                "reduction_percent": ".2f",
                "paper_percent": ".2f",
            },
        )
    )
    return 0


def main(argv=None, description=None):
    """Standalone entry point (`recipes/param_savings.py`)."""
    parser = argparse.ArgumentParser(
        description=description or "Trainable-parameter savings of Sec. 4.3.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
