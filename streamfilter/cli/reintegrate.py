"""``streamfilter reintegrate``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..reintegrate import add_parser

    add_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..reintegrate import run as _run

    return _run(args)
