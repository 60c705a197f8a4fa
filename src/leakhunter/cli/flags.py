"""Building blocks of the command line, shared by every command's parser: flags that override
config fields (their help shows the dataclass default), the log flags, ``--device`` and
``--config``, and :func:`settings`, which turns a command's parsed flags into its config.

A flag that overrides config field ``a.b`` stores under dest ``CFG + "a.b"`` with default
``argparse.SUPPRESS``, so the namespace holds only the overrides the user actually gave:
:func:`settings` layers them over the ``--config`` file, and ``train --resume`` checks them
against the run it continues.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..config import from_dict, load_toml
from ..runtime.device_policy import auto_help

T = TypeVar("T")
CFG = "cfg:"  # prefix of argparse dests that override a config field (dotted path)
TRAIN = "train:"  # tune: prefix of the dests of train settings fixed on the command line


def settings(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """Dataclass ``cls`` from defaults, then ``base``, then ``--config`` TOML, then explicit
    flags (the ``CFG`` dests present in ``args``)."""
    data: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        data.update(load_toml(args.config))
    for dest, value in vars(args).items():
        if dest.startswith(CFG):
            node = data
            *parents, leaf = dest[len(CFG):].split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return from_dict(cls, data)


def default(obj: Any, path: str) -> Any:
    """The value of dotted field ``path`` of dataclass instance ``obj``."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def show(value: Any) -> str:
    """A default as help text shows it: tuples comma-separated, ``None`` as "none"."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def option(parser: argparse.ArgumentParser, flags: Sequence[str], path: str, defaults: Any,
           help: str, **kwargs: Any) -> None:
    """A flag overriding config field ``path``; its help shows the dataclass default. A
    ``--no-X`` flag (``store_false``) says what happens without it ("default: X"), not
    "default: True", which reads as "no X by default"; a ``store_true`` flag says on/off."""
    value = default(defaults, path)
    kwargs.setdefault("type", type(value))
    shown = show(value)
    if kwargs.get("action") in ("store_true", "store_false"):
        kwargs.pop("type")
        if kwargs["action"] == "store_false":
            shown = flags[0].removeprefix("--no-").replace("-", " ")
        else:
            shown = "on" if value else "off"
    elif "choices" not in kwargs:
        kwargs.setdefault("metavar", flags[0].lstrip("-").upper().replace("-", "_"))
    parser.add_argument(*flags, dest=CFG + path, default=argparse.SUPPRESS,
                        help=f"{help} (default: {shown})", **kwargs)


def floats(text: str) -> tuple[float, ...]:
    """argparse type: "0.7,0.15,0.15" -> (0.7, 0.15, 0.15)."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def low_high(text: str) -> tuple[float, float]:
    """argparse type: "LOW,HIGH" -> (low, high); exactly two numbers."""
    values = floats(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {text!r}")
    return values[0], values[1]


def names(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated names, blanks dropped."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def optional_names(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated names, or "none"/"off" for none."""
    return () if text.strip().lower() in ("none", "off") else names(text)


def optional(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """argparse type: ``parse(text)``, or "none"/"off" for ``None``."""
    def parse_or_none(text: str) -> T | None:
        return None if text.strip().lower() in ("", "none", "off") else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")  # argparse's error names it
    return parse_or_none


def ints(text: str) -> tuple[int, ...]:
    """argparse type: "64,128" -> (64, 128)."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got "
                                         f"{text!r}") from None


optional_float = optional(float)  # a number, or "none"/"off"


def log_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/--debug/-q, accepted before and after the command name."""
    kw = {} if default is None else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="count", **(kw or {"default": 0}),
                        help="more log output (default: info; LEAKHUNTER_LOG_LEVEL sets it)")
    parser.add_argument("--debug", action="store_true", **kw,
                        help="debug log output (default: off)")
    parser.add_argument("-q", "--quiet", action="store_true", **kw,
                        help="warnings and errors only, no progress bars (default: off)")


def device_flag(parser: argparse.ArgumentParser, command: str | None, *, what: str = "",
                config: Any = None, path: str = "device") -> None:
    """``--device``, the one way every command declares it. Its help says what ``auto``
    means for ``command`` (:func:`~leakhunter.runtime.device_policy.auto_help`; ``None``: the
    demo, where each step makes its own choice), after ``what`` runs there when given.

    With ``config`` (the command's config dataclass, which has a ``device`` field) the flag
    overrides that field like any :func:`option`: dest ``CFG + "device"``, absent unless
    given, so ``--config`` can set it (``path``: the field's dotted path). Without, it is
    a plain ``args.device``, default "auto"."""
    help = (f"{what}: " if what else "") + f"auto, cpu, cuda or cuda:N; {auto_help(command)}"
    if config is not None:
        option(parser, ["--device"], path, config, help)
    else:
        parser.add_argument("--device", default="auto", help=f"{help} (default: auto)")


def common(parser: argparse.ArgumentParser) -> None:
    """``--config`` and the log flags, for a command whose settings are a config."""
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file of settings for this command; flags override it "
                             "(default: none)")
    log_flags(parser, argparse.SUPPRESS)
