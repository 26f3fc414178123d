"""`nc-keras demo`: the main job of `make demo`."""


def register(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="run the offline demo (no network, no GPU)",
        description="Run the offline demo: the parameter-savings table of Sec. 4.3.",
    )
    parser.set_defaults(func=run)


def run(args):
    from nc_keras.cli import params

    return params.run(params.default_args())
