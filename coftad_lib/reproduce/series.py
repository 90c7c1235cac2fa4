"""What one invocation of the runner works on: the notebooks, the run context, the output lock.

:func:`build_context` turns the command line into the one
:class:`~coftad_lib.paper.context.RunContext` that the notebooks (``run``), the plan (``--plan``)
and the prefill (``--cells-only``) share. :class:`OutLock` keeps two runners off one ``--out``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.executors import check_executor
from ..engine.packing import check_pack
from ..engine.pool import check_workers
from ..errors import COFTADInputError
from ..paper.context import RunContext, run_context
from ..paper.profiles import derive, split_overrides

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")
#: name of the lock file a runner holds in its output folder
LOCK_NAME = ".runner.lock"


def discover(notebooks_dir: str | os.PathLike) -> list[Path]:
    """Notebooks named ``NN_*.ipynb`` in ``notebooks_dir``, in name order."""
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise COFTADInputError(f"notebooks folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))


def select(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Notebooks matching ``only`` tokens: ``"04"`` (number), ``"04_mvtec"`` (stem) or ``"mvtec"`` (stem sans number)."""
    if not only:
        return list(notebooks)
    chosen: list[Path] = []
    for token in only:
        token = token.strip().removesuffix(".ipynb")
        hits = [p for p in notebooks if token in (p.stem[:2], p.stem, p.stem[3:])]
        if not hits:
            names = ", ".join(p.stem for p in notebooks) or "none"
            raise COFTADInputError(f"--only {token!r} matches no notebook; available: {names}")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def default_data_root(repo: Path | None = None) -> Path:
    """``$COFTAD_DATA_ROOT``, else ``<repo>/data`` if present, else ``<repo>/../shared/data`` if present, else ``<repo>/data``."""
    if os.environ.get("COFTAD_DATA_ROOT"):
        return Path(os.environ["COFTAD_DATA_ROOT"])
    repo = repo or Path.cwd()
    for cand in (repo / "data", repo.parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return repo / "data"


def build_context(profile: str, *, seeds: Sequence[int] | None = None, data_root: str | os.PathLike | None = None,
                  prep_dir: str | os.PathLike = "prepared_data", out_dir: str | os.PathLike | None = None,
                  params: Mapping[str, Any] | None = None, executor: str | None = None, address: str | None = None,
                  gpus_per_cell: float | None = None, pack: int | None = None,
                  workers: int | None = None) -> tuple[RunContext, dict[str, Any]]:
    """(the run's context, the ``--param`` values that are not profile overrides).

    Paths become absolute; ``params`` named in :data:`~coftad_lib.paper.profiles.OVERRIDE_KEYS`
    (``backbone``, ``steps``, ...) become the context's overrides; the executor's options are
    checked here, before anything runs. ``out_dir`` None: the profile's own folder
    (``results/smoke``; ``results`` for ``protocol-cpu``); ``executor``
    None: the profile's (``"cache"`` for ``protocol-cpu``, which renders from its committed cache),
    else ``"local"``.
    """
    overrides, rest = split_overrides(params or {})
    settings = derive(profile, overrides)
    out_dir = settings["out_dir"] if out_dir is None else out_dir
    executor = str(settings.get("executor", "local")) if executor is None else executor
    check_executor(executor)
    if pack is not None:
        check_pack(pack, "--pack")
    if workers is not None:
        check_workers(workers)
    wanted = {"ray": ("address", "gpus_per_cell"), "pool": ("workers",)}.get(executor, ())
    options = {k: v for k, v in (("address", address), ("gpus_per_cell", gpus_per_cell), ("pack", pack),
                                 ("workers", workers)) if v is not None and (k in wanted or k == "pack")}
    root = Path(data_root).resolve() if data_root is not None else default_data_root().resolve()
    ctx = run_context(profile, seeds, root, Path(prep_dir).resolve(), Path(out_dir).resolve(),
                      overrides=overrides, executor=executor, executor_options=options)
    return ctx, rest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextlib.contextmanager
def out_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<out_dir>/.runner.lock`` (this process's pid) while a runner writes into ``out_dir``.

    A second runner on the same folder fails at once naming the first; a lock left by a process
    that no longer exists is taken over.
    """
    path = Path(out_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                text = path.read_text().split()
                pid = int(text[0]) if text else -1
            except (OSError, ValueError):
                pid = -1
            if pid > 0 and _alive(pid):
                since = " ".join(text[1:]) if len(text) > 1 else "?"
                raise COFTADInputError(f"another runner (pid {pid}, since {since}) is writing to {Path(out_dir)}; "
                                       "wait for it to finish or pass another --out") from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        break
    else:
        raise COFTADInputError(f"could not take the lock {path}")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
