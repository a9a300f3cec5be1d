"""``streamfilter compare``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..compare import add_compare_parser

    add_compare_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..compare import run_compare as _run

    return _run(args)
