"""Building blocks of the command line: flags that override config fields (their help shows
the dataclass default), the log flags, ``--device`` and ``--config``, shared by every
command's parser."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..runtime.devices import auto_help
from .commands import CFG


def default(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def option(parser: argparse.ArgumentParser, flags: Sequence[str], path: str, defaults: Any,
            help: str, **kwargs: Any) -> None:
    """A flag overriding config field ``path``; its help shows the dataclass default."""
    kwargs.setdefault("type", type(default(defaults, path)))
    if kwargs.get("action") in ("store_true", "store_false"):
        kwargs.pop("type")
    elif "choices" not in kwargs:
        kwargs.setdefault("metavar", flags[0].lstrip("-").upper().replace("-", "_"))
    parser.add_argument(*flags, dest=CFG + path, default=argparse.SUPPRESS,
                        help=f"{help} (default: {show(default(defaults, path))})", **kwargs)


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def log_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/--debug/-q, accepted before and after the command name."""
    kw = {} if default is None else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="count", **(kw or {"default": 0}),
                        help="more log output (default: info; LEAKHUNTER_LOG_LEVEL sets it)")
    parser.add_argument("--debug", action="store_true", **kw,
                        help="debug log output (default: off)")
    parser.add_argument("-q", "--quiet", action="store_true", **kw,
                        help="warnings and errors only, no progress bars (default: off)")


def device_help(command: str) -> str:
    return f"auto, cpu, cuda or cuda:N; {auto_help(command)}"


def device_flag(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--device", default="auto",
                        help=f"{device_help(command)} (default: auto)")


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file of settings for this command; flags override it "
                             "(default: none)")
    log_flags(parser, argparse.SUPPRESS)


def decision_options(p: argparse.ArgumentParser, d: Any, otherwise: str) -> None:
    """--aggregate, --vote-fraction, --threshold | --target-specificity (evaluate,
    calibrate); ``otherwise`` says what "none" means."""
    option(p, ["--aggregate"], "aggregate", d, "how segments decide a recording: vote "
                                               f"(a share of segments), mean or max; none = "
                                               f"{otherwise}",
           choices=["vote", "mean", "max"], type=str)
    option(p, ["--vote-fraction"], "vote_fraction", d, "share of segments that makes a "
                                                       f"recording a leak; none = {otherwise}",
           type=optional_float)
    g = p.add_mutually_exclusive_group()
    option(g, ["--threshold"], "threshold", d, f"fixed segment threshold; none = {otherwise}"
                                               " (re-chosen F1-best on VALIDATION when the "
                                               "aggregation changes)", type=optional_float)
    option(g, ["--target-specificity"], "target_specificity", d,
           "choose the most sensitive threshold with this specificity on VALIDATION",
           type=optional_float)
    option(p, ["--class-aggregate"], "class_aggregate", d, "multi-class: a recording's "
                                                           "class by segment vote or mean "
                                                           f"class probability; none = "
                                                           f"{otherwise}",
           choices=["vote", "mean"], type=str)
