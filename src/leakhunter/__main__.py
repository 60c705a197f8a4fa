"""``python -m leakhunter`` (and ``torchrun -m leakhunter``) runs the CLI."""

from .cli import run

run()
