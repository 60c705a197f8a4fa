"""The ``leakhunter`` command line: parse, call the library, print.

One module per group of commands, each command's parser beside the function it calls:
:mod:`.data` (synth, synth-pairs, build, info), :mod:`.training` (train, learn, tune),
:mod:`.decisions` (evaluate, calibrate, predict), :mod:`.deliver` (export, report, demo),
:mod:`.locate` (locate) and :mod:`.study` (study). Their parsers are built from the blocks
in :mod:`.flags`, which also turns flags into settings: the stage's config dataclass
defaults, then ``--config FILE.toml``, then flags. Library imports happen inside the
commands, so ``leakhunter --help`` stays fast. Errors a user can fix
(:class:`LeakhunterError`) print one line and exit 1; Ctrl-C and SIGTERM exit 130 and 143
after the library has removed its partial files.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import LeakhunterError
from ..runtime import signals
from ..runtime.log import setup_logging
from . import data, decisions, deliver, locate, study, training
from .flags import log_flags

log = logging.getLogger("leakhunter.cli")


# --- the parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The whole parser; each command's ``func`` default is the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="leakhunter", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Recordings of water pipes in, leak decisions out.",
        epilog="Run 'leakhunter COMMAND --help' for a command's flags.")
    parser.add_argument("--version", action="version", version=f"leakhunter {__version__}")
    log_flags(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # the order of --help; tune copies train's flags, so train comes first
    for add in (data.add_synth, data.add_synth_pairs, data.add_build, data.add_info,
                training.add_train,
                decisions.add_evaluate, decisions.add_calibrate, decisions.add_predict,
                deliver.add_export, deliver.add_report, locate.add_locate,
                training.add_learn, training.add_tune, study.add_study,
                deliver.add_demo):
        add(sub)
    return parser


# --- entry points ---------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv``; returns the exit code (for tests and :func:`run`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose, quiet=args.quiet, debug=args.debug)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # (a closed pipe is said here, not as noise at exit)
        return code
    except LeakhunterError as exc:
        print(f"leakhunter: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an OS failure at a site without its own message: still one line
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            # the reader of the output went away (`| head`): nothing more to say, and
            # nothing may be printed at exit either; 141 is the shell's code for it
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE
        log.debug("operating-system error", exc_info=True)
        print(f"leakhunter: error: {_os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signals.clear()
        code = exc.exit_code if isinstance(exc, signals.Interrupted) else 130
        what = "terminated" if code == 128 + signal.SIGTERM else "interrupted"
        print(f"leakhunter: {what}; partial output removed", file=sys.stderr)
        return code


def _stdout_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it (poll says POLLERR)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no real stdout
        return False


def _os_error_line(exc: OSError) -> str:
    """``path: reason [ERRNO]`` for an ``OSError`` that no library step described."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    code = f" [{errno.errorcode[exc.errno]}]" if exc.errno in errno.errorcode else ""
    return f"{where}{exc.strerror or exc}{code}"


def run() -> None:
    """Console-script entry point."""
    signals.install()
    sys.exit(main())
