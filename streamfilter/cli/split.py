"""``streamfilter split``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..split import add_parser

    add_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..split import run as _run

    return _run(args)
