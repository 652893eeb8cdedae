"""Argument types for the CLI: a wrong number is refused by argparse (exit 2, the argument named),
before anything starts. A drill at -5 events/s or an API on port 99999 is a typo, not a request.

>>> bounded(int, 1, 65535)("8090"), bounded(float, 0.001)("2.5")
(8090, 2.5)
>>> bounded(int, 1, 65535)("99999")
Traceback (most recent call last):
argparse.ArgumentTypeError: 99999 is out of range (1 to 65535)
>>> bounded(float, 0.001)("nan")
Traceback (most recent call last):
argparse.ArgumentTypeError: 'nan' is not a number
>>> identifier("vigil_bench"), identifier("x;drop")
Traceback (most recent call last):
argparse.ArgumentTypeError: 'x;drop': letters, digits and _ (first a letter), at most 63 characters
"""

from __future__ import annotations

import argparse
import math
import re


def bounded(kind: type, low: float | None = None, high: float | None = None):
    """An argparse type: `kind` (int or float), finite, within [low, high]."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text[:80]!r} is not {noun}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a number")
        if (low is not None and value < low) or (high is not None and value > high):
            span = (f"{low:g} to {high:g}" if low is not None and high is not None
                    else f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise argparse.ArgumentTypeError(f"{text[:80]} is out of range ({span})")
        return value
    parse.__name__ = kind.__name__    # argparse names the type in its messages
    return parse


PORT = bounded(int, 1, 65535)
POSITIVE_INT = bounded(int, 1)
NON_NEGATIVE = bounded(float, 0)
FRACTION = bounded(float, 0, 1)
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def identifier(text: str) -> str:
    """A PostgreSQL database name as the project makes them (no quoting needed anywhere)."""
    if not _IDENTIFIER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text[:80]!r}: letters, digits and _ (first a letter), at most 63 characters")
    return text


class BadFile(ValueError):
    """A file given on the command line that cannot be used; the message is one line."""


def read_text_file(path, max_bytes: int, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`, or BadFile: not a folder, FIFO or
    device (/dev/zero never ends, a FIFO may never open), not binary, not a NUL in the path.

    >>> read_text_file("/dev/zero", 10)
    Traceback (most recent call last):
    vigil.cli_args.BadFile: /dev/zero is not a regular file
    """
    from pathlib import Path

    shown = str(path)[:200]
    try:
        file = Path(path)
        if not file.is_file():
            raise BadFile(f"{shown} is not a regular file" if file.exists() else f"no such file: {shown}")
        with open(file, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except (OSError, ValueError) as error:      # ValueError: a NUL in the path (BadFile is one too)
        if isinstance(error, BadFile):
            raise
        raise BadFile(f"cannot read {shown!r}: {getattr(error, 'strerror', None) or error}") from None
    if len(data) > max_bytes:
        raise BadFile(f"{shown} is larger than {max_bytes:,} bytes: not a {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadFile(f"{shown} is not UTF-8 text (byte {error.start}): not a {what}") from None
    if "\x00" in text:
        raise BadFile(f"{shown} holds a NUL character: not a {what}")
    return text
