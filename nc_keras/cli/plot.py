"""`nc-keras plot`: overlay runs in the paper's figure layout."""


def register(subparsers):
    from nc_keras.plots import DEPTH_LAYOUT, LAYOUTS, PANELS

    parser = subparsers.add_parser(
        "plot",
        help="overlay the NC metrics of several runs (paper's layout)",
        description=(
            "Read log.csv of each RUN_DIR (written by `nc-keras train`, the "
            "recipes, or a fit with NeuralCollapse + EpochCSVLogger) and draw "
            "one line per run in panels laid out like the paper's figures: "
            "NC1-NC4 on a log scale, accuracies in percent."
        ),
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (or CSV files)")
    parser.add_argument("-o", "--output", default="nc_runs.png",
                        help="image file to write; the extension picks the format (default: nc_runs.png)")
    parser.add_argument("--layout", default="default",
                        help=f"one of {', '.join(LAYOUTS)} (Fig. 3, 4, 5 of the paper), "
                             f"{DEPTH_LAYOUT} (NC1, NCC accuracy and numerical rank against depth "
                             "of one run's measured layers, one curve per epoch; the last two "
                             "when its log has them), or a comma-separated list of panels from: "
                             f"{', '.join(PANELS)} (default: default)")
    parser.add_argument("--labels", help="comma-separated legend entries, one per run "
                        "(default: each run's label in config.json, else its folder name)")
    parser.add_argument("--title", help="figure title")
    parser.set_defaults(func=run)


def run(args):
    from nc_keras.cli import UserError
    from nc_keras.plots import DEPTH_LAYOUT, LAYOUTS, plot_depth, plot_runs

    if args.layout == DEPTH_LAYOUT:
        if len(args.run_dirs) != 1:
            raise UserError(f"--layout {DEPTH_LAYOUT} draws one run; got {len(args.run_dirs)}")
        try:
            path = plot_depth(args.run_dirs[0], args.output, title=args.title)
        except (ValueError, FileNotFoundError) as error:
            raise UserError(str(error)) from error
        print(f"figure written to {path}")
        return 0
    layout = args.layout if args.layout in LAYOUTS else tuple(args.layout.split(","))
    labels = args.labels.split(",") if args.labels else None
    try:
        path = plot_runs(args.run_dirs, args.output, layout=layout, labels=labels, title=args.title)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from error
    print(f"figure written to {path}")
    return 0
