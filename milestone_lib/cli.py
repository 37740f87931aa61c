"""`milestone` command line: each subcommand runs what a notebook calls, so a job runs the same code."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import MilestoneError

__all__ = ["main"]


def _variants(args: argparse.Namespace) -> None:
    from .report import stage_table
    from .settings import run_settings
    from .variants.build import BuildConfig, build_variants

    config = BuildConfig.smoke() if args.smoke else BuildConfig()
    # A smoke build writes to artifacts/smoke/, never over the full build's variants.
    result = build_variants(config, settings=run_settings(smoke=args.smoke))
    print(stage_table(result).to_string(index=False))
    print(json.dumps(sorted(result.variants), indent=1))


def _milestone(args: argparse.Namespace) -> None:
    from .notebooks import run_milestone

    run_milestone(smoke=args.smoke, only=args.only)


def _left_running() -> str:
    """What the notebooks left running on purpose (the local registry, the private Docker engine) and how to stop it."""
    from .containers.engine import describe_private_engine
    from .registry.local_server import describe_left_running

    lines = describe_left_running().splitlines()
    engine = describe_private_engine()
    if engine is None:
        return "\n".join(lines)
    if lines[0] != "Left running:":  # "Left running: nothing ..." of the registry
        lines = ["Left running:"]
    return "\n".join([*lines, f"  {engine}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="milestone", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("milestone", help="run every notebook in order (papermill)")
    run.add_argument("--smoke", action="store_true", help="tiny, fast parameters")
    run.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 01 02")
    run.set_defaults(action=_milestone)
    variants = commands.add_parser("variants", help="build the default variants without a notebook")
    variants.add_argument("--smoke", action="store_true")
    variants.set_defaults(action=_variants)
    args = parser.parse_args(argv)
    try:
        args.action(args)
    except MilestoneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.command == "milestone":  # the run's last lines, whether it failed or not
            sys.stderr.flush()
            print(_left_running(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
