"""``streamfilter inspect``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..inspect import add_parser

    add_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..inspect import run_inspect as _run

    return _run(args)
