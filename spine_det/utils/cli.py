"""What the tools share on the command line: one way to fail (``error: ...`` in one line, exit status 2,
for every error a user can fix), the data options, a parser that catches flags given after the
``KEY VALUE`` overrides, and argparse types for numbers."""
from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from typing import Any, Callable, Iterator, List, Optional, Sequence, Type

from spine_det.utils.errors import EXIT_USER_ERROR, UserError


def user_errors() -> tuple:
    """The exception types that mean bad input (a config, a checkpoint, a data file, a device), not a
    bug: every :class:`~spine_det.utils.errors.UserError` (ConfigError, CheckpointError, DataError,
    DeviceUnavailableError, ...) and a missing file."""
    return (UserError, FileNotFoundError)


def report_user_error(error: BaseException) -> int:
    """Print ``error: <message>`` (one line) on stderr; return the exit status of a refusal (2)."""
    message = " ".join(str(error).split("\n"))
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def run_reporting_user_errors(fn: Callable[[Any], int], args: Any) -> int:
    """``fn(args)``; a user error becomes ``error: ...`` on stderr and exit status 2."""
    try:
        return fn(args)
    except user_errors() as e:
        return report_user_error(e)


def reports_user_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a tool's ``main(argv)``: a user error raised anywhere in it (parsing included) is one
    line and exit status 2, before or instead of a traceback; everything else is left alone."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except user_errors() as e:
            return report_user_error(e)

    return wrapper


@contextlib.contextmanager
def as_user_error(*types: Type[BaseException]) -> Iterator[None]:
    """Inside the block, the library's argument errors of ``types`` (the ``KeyError`` of an unknown task
    name, the ``ValueError`` of a value out of range, ...) become :class:`UserError` with their message."""
    try:
        yield
    except UserError:
        raise
    except types as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)  # KeyError's str() quotes it
        raise UserError(str(message)) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, plus one check for tools with trailing ``KEY VALUE`` overrides (an ``opts``
    argument with ``nargs=REMAINDER``): a flag given after the first override is not a flag any more but
    one more override; :class:`UserError` says to move it (``... SOLVER.MAX_ITER 10 --resume``)."""

    def parse_known_args(self, args: Optional[Sequence[str]] = None, namespace: Any = None):  # type: ignore[override]
        ns, extra = super().parse_known_args(args, namespace)
        check_flags_before_overrides(self, getattr(ns, "opts", None))
        return ns, extra


def misplaced_flags(parser: argparse.ArgumentParser, opts: Optional[Sequence[str]]) -> List[str]:
    """The tokens of ``opts`` that are flags: ``--anything`` (no config key or value starts so), and
    the parser's own short options (``-h``)."""
    known = set(parser._option_string_actions)
    return [t for t in (opts or []) if isinstance(t, str)
            and (t.startswith("--") and len(t) > 2 or t.split("=", 1)[0] in known)]


def check_flags_before_overrides(parser: argparse.ArgumentParser, opts: Optional[Sequence[str]]) -> None:
    """:class:`UserError` naming the flags found among the overrides and where they must go."""
    flags = misplaced_flags(parser, opts)
    if flags:
        first = next((t for t in opts or [] if t not in flags), "the overrides")
        raise UserError(f"{' '.join(flags)}: flags after the KEY VALUE overrides are read as overrides; "
                        f"move {'them' if len(flags) > 1 else 'it'} before {first}")


def add_data_args(parser: Any, config_key: Optional[str] = "SPINE.DATA_ROOT") -> None:
    """``--data-root`` and ``--cache-dir``, as every training tool takes them (``config_key``: the config
    key that may name the data root instead, said in the help; None if the tool has none)."""
    parser.add_argument("--data-root", metavar="DIR", help="dataset folder (Training/{Normal,Damaged}/..., optional "
                        "Test/)" + (f"; or set {config_key}" if config_key else ""))
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where the manifest is cached (default: $SPINE_DET_CACHE or ~/.cache/spine_det)")


# -- numbers on the command line ----------------------------------------------------------------------
# argparse ``type=`` callables: a bad number is an argparse error (one line, exit 2) before anything runs,
# instead of a Python slice (``--limit -1``: all but the last), an empty split (``--val-fraction 2``) or
# NaN passing every comparison.


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
    if kind is float and v != v:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    return v


def _checked(kind: Callable[[str], Any], ok: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        v = _number(text, kind)
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return v

    return parse


positive_int = _checked(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
finite_float = _checked(float, lambda v: abs(v) != float("inf"), "a finite number")
fraction_open = _checked(float, lambda v: 0.0 < v < 1.0, "a fraction in (0, 1)")
fraction_closed_right = _checked(float, lambda v: 0.0 < v <= 1.0, "a fraction in (0, 1]")
fraction_closed_left = _checked(float, lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)")


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""
    return _checked(int, lambda v: v >= low, f"an integer >= {low}")
