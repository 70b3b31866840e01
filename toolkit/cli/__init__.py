"""The ``toolkit`` command: parse, build a typed request, call one core function, exit.

The code lives in :mod:`toolkit.cli.main`; this file only re-exports.
"""

from toolkit.cli.main import (
    EXIT_CODES_HELP,
    build_parser,
    entry,
    environment_failure,
    main,
    positive_int,
)

__all__ = [
    "EXIT_CODES_HELP",
    "build_parser",
    "entry",
    "environment_failure",
    "main",
    "positive_int",
]
