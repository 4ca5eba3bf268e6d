"""What every osteo command shares: its argument parser, the config arguments, and how an
expected error is reported (one line on stderr and an exit code, no traceback)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["command_parser", "add_config_arguments", "add_bootstrap_arguments", "report_error"]


def command_parser(doc: str | None, epilog: str | None = None) -> argparse.ArgumentParser:
    """A parser whose ``--help`` shows the command's module docstring as written."""
    return argparse.ArgumentParser(
        description=doc, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and the ``key=value`` overrides, as ``load_config`` takes them."""
    parser.add_argument("--config", type=Path, required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value")


def add_bootstrap_arguments(parser: argparse.ArgumentParser, resamples_help: str) -> None:
    """``--n-bootstrap`` (patient-bootstrap resamples, 0 skips) and its ``--seed``."""
    parser.add_argument("--n-bootstrap", type=int, default=2000, help=resamples_help)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def report_error(err: BaseException | str, code: int) -> int:
    """Print ``error: <err>`` on stderr; return ``code`` for the command to exit with."""
    print(f"error: {err}", file=sys.stderr)
    return code
