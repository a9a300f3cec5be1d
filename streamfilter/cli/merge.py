"""``streamfilter merge``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..merge import add_merge_parser

    add_merge_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..merge import run_merge as _run

    return _run(args)
