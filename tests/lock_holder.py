"""A child process that holds a writer lock, for the lock tests (``test_atomic_files.py``,
``test_model_folder.py``): only another process can show that a second writer is refused at once
and that a killed holder's lock is taken over."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def lock_held_by_child(target: Path) -> Iterator[subprocess.Popen]:
    """Within the block, a child process holds ``exclusive_lock(target)``; yields that child.

    On leaving, the child is SIGKILLed: no clean-up runs, so its lock file stays behind with the
    dead pid in it (what a hard kill leaves), while the kernel releases the lock itself.
    """
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from coftad_lib.atomic_files import exclusive_lock
        with exclusive_lock({str(target)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
