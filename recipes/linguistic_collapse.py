"""Token-level neural collapse in causal language models (Wu & Papyan, NeurIPS 2024).

GPT-2 models (keras-hub, random initialization) of several widths d learn
next-token prediction on the Python standard library's docstrings, a real
corpus on every machine (no download), tokenized by a byte-level BPE
tokenizer with a vocabulary of at least 5,000 tokens. Every epoch,
`NeuralCollapse` measures the last layer's features at every position
against the next token (absent tokens skipped, padding weighted 0): NC1,
CDNV, GNC2, UNC3 and the other metrics that need no simplex ETF. The
figure draws them against epochs, one curve per width, as the paper's.

    python recipes/linguistic_collapse.py --preset smoke     # about a minute
    python recipes/linguistic_collapse.py --preset cpu       # about 15 minutes, 2-core CPU

Needs the `text` extra (keras-hub, tokenizers): pip install 'nc_keras[text]'.
A run interrupted midway resumes where it stopped when started again with
the same --output-dir.
"""

import argparse
import dataclasses
import sys

from nc_keras.train.language import train_language_models
from nc_keras.train.language_presets import LANGUAGE_PRESETS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(LANGUAGE_PRESETS), default="smoke",
                        help="smoke: seconds per width; cpu: three widths, 10 epochs "
                             "(default: smoke)")
    parser.add_argument("--output-dir", help="where the runs, figure.png and summary.md go "
                                             "(default: runs/linguistic_collapse/PRESET)")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--widths", help="comma-separated feature dimensions d, e.g. 32,64")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    config = LANGUAGE_PRESETS[args.preset]
    if args.epochs is not None:
        config = dataclasses.replace(config, epochs=args.epochs)
    if args.widths:
        try:
            widths = tuple(int(width) for width in args.widths.split(","))
        except ValueError:
            parser.error(f"--widths must be integers separated by commas; got {args.widths!r}")
        config = dataclasses.replace(config, widths=widths)
    output_dir = args.output_dir or f"runs/linguistic_collapse/{args.preset}"
    try:
        finals = train_language_models(config, output_dir, verbose=0 if args.quiet else "auto")
    except (ImportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for width, logs in finals.items():
        print(f"d = {width}: loss {logs['loss']:.3f}, nc1 {logs['nc1']:.4g}, "
              f"cdnv {logs['cdnv']:.4g}, tokens present {int(logs['num_classes_present'])}")
    print(f"wrote {output_dir}/figure.png and summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
