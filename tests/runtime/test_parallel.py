"""The worker pool (leakhunter.runtime.parallel): a worker never outlives its parent, killed
or not (the SIGKILL machinery is tests/helpers/faults.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from leakhunter.runtime import parallel

from ..helpers.faults import is_running, kill_and_check_orphans


def test_worker_without_a_parent_death_signal_ends_by_its_watchdog(tmp_path: Path) -> None:
    """Where the OS has no parent-death signal, the watchdog thread ends the worker."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent('''
        import os, sys, time
        from leakhunter.runtime import parallel
        parallel._set_parent_death_signal = lambda: False  # as on macOS or Windows
        parent = os.getpid()
        child = os.fork()
        if child == 0:
            parallel.die_with_parent(parent)
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        time.sleep(60)
    '''))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(proc.stdout.readline()))
    time.sleep(0.2)
    assert is_running(child)
    assert kill_and_check_orphans(proc) == 1


def test_worker_whose_parent_died_before_it_armed_leaves_at_once() -> None:
    """The race: the parent died between fork() and prctl(); getppid() tells."""
    pid = os.fork()
    if pid == 0:
        try:
            parallel.die_with_parent(os.getppid() + 10**6)  # "my parent is already gone"
        finally:
            os._exit(0)  # only reached if die_with_parent did not exit
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
