"""Keep kernel start-up chatter of papermill-run notebooks off the console.

ipykernel (>= 7) logs, at WARNING level from the kernel process, "Kernel is running over TCP
without encryption ... susceptible to eavesdropping" each time a kernel starts with the default TCP
transport (``ipykernel/kernelapp.py``, ``init_sockets``). The kernel's stderr is the runner's
console, so a 19-notebook run printed it 19 times. The ports are bound to 127.0.0.1 and the
connection is HMAC-signed with a per-kernel key, so for a local batch run the warning is noise.

It cannot be caught with :mod:`warnings` (it is a log record in another process); the kernel's
own log level is the switch: ``--IPKernelApp.log_level=ERROR`` on the kernel command line, which
papermill passes through to nbclient as ``extra_arguments``. Errors of the kernel still show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: kernel command-line arguments that silence ipykernel's start-up warnings (errors still show)
QUIET_KERNEL_ARGS: tuple[str, ...] = ("--IPKernelApp.log_level=ERROR",)


def quiet_kernel_kwargs(extra_arguments: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword arguments for ``papermill.execute_notebook`` that start a quiet kernel.

    Example:
        >>> pm.execute_notebook(src, dst, parameters=p, **quiet_kernel_kwargs())

    Args:
        extra_arguments: other kernel arguments to keep (placed first).
    """
    args = list(extra_arguments)
    args += [a for a in QUIET_KERNEL_ARGS if a not in args]
    return {"extra_arguments": args}
