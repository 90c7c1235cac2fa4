"""Execute the notebook series ``notebooks/NN_*.ipynb`` in order with papermill.

Each notebook gets the parameters PROFILE, SEEDS, DATA_ROOT and OUT_DIR (plus any ``--param``),
which must be assigned in its ``parameters`` cell (checked before anything runs). The executed
copies go to ``<out>/executed/``; each notebook writes ``<out>/status/<name>.json`` through
:func:`coftad_lib.reproduce.record_status`. The runner then writes ``<out>/runs/summary.md`` (and
``summary.json``) and the report ``<out>/REPORT.md``.

Reruns execute every selected notebook again; the work inside is cached per cell, so they are fast.

Exit codes of :func:`run_series` (and the CLI): 0 all ok; 1 a notebook failed (or wrote no
status); 3 ``strict`` and some dataset or weights were missing. Bad arguments raise
:class:`~coftad_lib.errors.COFTADInputError` before any notebook runs (CLI exit code 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import COFTADInputError
from .cache import atomic_write_json, atomic_write_text
from .executors import ENV_GPUS_PER_CELL, ENV_RAY_ADDRESS, check_executor
from .notebook_params import check_parameters, parameter_names
from .packing import ENV_PACK, check_pack
from .pool import ENV_WORKERS, check_workers
from .profiles import run_profile
from .status import (
    ENV_NOTEBOOK,
    ENV_PROFILE,
    display_path,
    read_status,
    relative_to_roots,
    status_path,
)

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")
#: the parameters every notebook of the series must declare
REQUIRED_PARAMS: tuple[str, ...] = ("PROFILE", "SEEDS", "DATA_ROOT", "PREP_DIR", "OUT_DIR")

#: where data_prep notebooks write derived datasets (CIFAR-C, AITEX crops, SemiCon slices);
#: table notebooks search DATA_ROOT first, then this folder.
DEFAULT_PREP_DIR = "prepared_data"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STRICT = 0, 1, 2, 3
_PYTHON_NAMES = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}


@dataclass
class NotebookResult:
    """Outcome of one notebook: status ``ok`` / ``missing`` / ``failed`` / ``no status``."""

    name: str
    status: str
    seconds: float
    missing: list[dict[str, str]] = field(default_factory=list)
    error: str = ""
    executed: str = ""
    profile: str = ""
    failed_cells: list[dict[str, Any]] = field(default_factory=list)


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


def check_kernel(kernel_name: str) -> None:
    """Refuse a kernelspec that would run a different interpreter than this one.

    jupyter_client replaces a bare ``python`` / ``python3`` in the spec by ``sys.executable``;
    an absolute path to another interpreter (e.g. a user-wide kernelspec) would import another
    environment's packages, so results would not match the recorded versions.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as exc:
        raise COFTADInputError(
            f"kernel {kernel_name!r} is not installed; run `{sys.executable} -m ipykernel install --sys-prefix`"
        ) from exc
    exe = spec.argv[0] if spec.argv else ""
    if exe in _PYTHON_NAMES:
        return
    if Path(exe).resolve() != Path(sys.executable).resolve():
        raise COFTADInputError(
            f"kernel {kernel_name!r} runs {exe}, not this interpreter {sys.executable}; "
            f"run `{sys.executable} -m ipykernel install --sys-prefix` or pass --kernel"
        )


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the kernel subprocess, restoring them afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(nb_path: Path, out_dir: Path, params: Mapping[str, Any], kernel_name: str,
            profile: str, log_output: bool = False, env: Mapping[str, str] | None = None) -> NotebookResult:
    """Run one notebook with papermill into ``out_dir/executed``; read the status it wrote.

    ``env``: extra environment variables for the kernel (the executor's cluster address).
    """
    import papermill as pm

    name = nb_path.stem
    executed = out_dir / "executed" / nb_path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    stale = status_path(out_dir, name)
    if stale.exists():
        stale.unlink()  # a status left from an earlier run must not pass for this one
    t0 = time.perf_counter()
    error = ""
    try:
        with _environ(**{ENV_NOTEBOOK: name, ENV_PROFILE: profile, **(env or {})}):
            pm.execute_notebook(str(nb_path), str(executed), parameters=dict(params), kernel_name=kernel_name,
                                cwd=str(nb_path.parent), progress_bar=False, log_output=log_output)
    except pm.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel death, timeouts: report and go on with the next notebook
        error = f"{type(exc).__name__}: {exc}"
    seconds = round(time.perf_counter() - t0, 1)
    st = read_status(out_dir, name)
    if error:
        status = "failed"
    elif st is None:
        status, error = "no status", "notebook did not call coftad_lib.reproduce.record_status()"
    else:
        status = st.get("status", "ok")
    failed = (st or {}).get("failed", [])
    if failed and not error:
        error = f"{len(failed)} cell(s) failed (listed in the summary)"
    return NotebookResult(name=name, status=status, seconds=seconds, missing=(st or {}).get("missing", []),
                          error=error, executed=str(executed), profile=(st or {}).get("profile", profile),
                          failed_cells=failed)


def exit_code(results: Sequence[NotebookResult], strict: bool) -> int:
    """:data:`EXIT_FAILED` if any notebook failed, :data:`EXIT_STRICT` if strict and data was missing, else 0."""
    if any(r.status in ("failed", "no status") for r in results):
        return EXIT_FAILED
    if strict and any(r.status == "missing" or r.missing for r in results):
        return EXIT_STRICT
    return EXIT_OK


def format_summary(results: Sequence[NotebookResult], roots: Mapping[str, str] | None = None) -> str:
    """Markdown table: notebook, status, seconds, missing datasets, error (paths relative to ``roots``)."""
    lines = ["| notebook | status | seconds | missing datasets | error |", "|---|---|---:|---|---|"]
    for r in results:
        miss = ", ".join(m["dataset"] for m in r.missing)
        err = relative_to_roots(r.error, roots or {}).replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.1f} | {miss} | {err} |")
    return "\n".join(lines)


def summary_roots(meta: Mapping[str, Any]) -> dict[str, str]:
    """The folders that messages are printed relative to: ``{"DATA_ROOT": ..., "PREP_DIR": ..., "OUT_DIR": ...}``."""
    return {name: str(meta[key]) for name, key in (("DATA_ROOT", "data_root"), ("PREP_DIR", "prep_dir"),
                                                   ("OUT_DIR", "out_dir")) if meta.get(key)}


def write_summary(results: Sequence[NotebookResult], out_dir: Path, meta: Mapping[str, Any]) -> Path:
    """Write ``runs/summary.md`` (table, failed cells, how to get each missing dataset) and ``runs/summary.json``.

    Paths in messages are printed relative to the data root (and PREP_DIR, OUT_DIR); the roots
    themselves relative to the working folder.
    """
    runs = out_dir / "runs"
    roots = summary_roots(meta)
    shown = {k: (display_path(v) if k in ("data_root", "prep_dir", "out_dir") else v) for k, v in meta.items()}
    head = [f"# Run summary: profile {meta['profile']}", "",
            *(f"- {k}: `{v}`" for k, v in shown.items() if k != "profile"), "",
            "Paths in messages are relative to the data root (DATA_ROOT) or PREP_DIR.", "",
            format_summary(results, roots)]
    failed = [(r.name, c) for r in results for c in r.failed_cells]
    if failed:
        head += ["", "## Failed cells", "", "| notebook | table | dataset | task | method | seed | error |",
                 "|---|---|---|---|---|---:|---|"]
        for name, c in failed:
            err = relative_to_roots(str(c.get("message", "")), roots).replace("|", "\\|")[:300]
            head.append(f"| {name} | {c.get('table', '')} | {c.get('dataset', '')} | {c.get('task', '')} "
                        f"| {c.get('method', '')} | {c.get('seed', '')} | {err} |")
    how: dict[str, str] = {}
    for r in results:
        for m in r.missing:
            how.setdefault(m["dataset"], m["message"])
    if how:
        head += ["", "## Missing datasets and how to get them", ""]
        head += [f"- **{d}**: {relative_to_roots(msg, roots)}" for d, msg in sorted(how.items())]
    atomic_write_json(runs / "summary.json", {"meta": dict(meta), "notebooks": [asdict(r) for r in results]})
    return atomic_write_text(runs / "summary.md", "\n".join(head) + "\n")


def default_data_root(repo: Path | None = None) -> Path:
    """``$COFTAD_DATA_ROOT``, else ``<repo>/data`` if present, else ``<repo>/../shared/data`` if present, else ``<repo>/data``."""
    if os.environ.get("COFTAD_DATA_ROOT"):
        return Path(os.environ["COFTAD_DATA_ROOT"])
    repo = repo or Path.cwd()
    for cand in (repo / "data", repo.parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return repo / "data"


def run_series(profile: str, *, only: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
               strict: bool = False, data_root: str | os.PathLike | None = None,
               prep_dir: str | os.PathLike = DEFAULT_PREP_DIR, out_dir: str | os.PathLike = "results", params: Mapping[str, Any] | None = None,
               notebooks_dir: str | os.PathLike = "notebooks", kernel_name: str = "python3",
               log_output: bool = False, report: bool = True, executor: str = "local",
               address: str | None = None, gpus_per_cell: float | None = None,
               pack: int | None = None, workers: int | None = None) -> tuple[int, list[NotebookResult]]:
    """Run the selected notebooks in order; write the summary and the report; return (exit code, results).

    Parameters given to each notebook: PROFILE, SEEDS (``seeds`` or the profile's), DATA_ROOT,
    PREP_DIR and OUT_DIR (absolute paths), ``params``, and EXECUTOR to the notebooks that declare
    it (those that run cells); ``address`` / ``gpus_per_cell`` reach ``EXECUTOR = "ray"`` through
    the environment (:mod:`coftad_lib.reproduce.executors`), and so does ``pack`` (COFT-AD cells
    fitted per batched step, :mod:`coftad_lib.reproduce.packing`), and ``workers`` (processes of
    ``EXECUTOR = "pool"``, :mod:`coftad_lib.reproduce.pool`). ``params`` named in
    :data:`~coftad_lib.reproduce.profiles.OVERRIDE_KEYS` (``backbone``, ``steps``, ...) change the
    profile instead: ``paper`` with ``backbone=efficientnet_lite0`` runs as the profile
    ``paper+backbone=efficientnet_lite0``. All selected notebooks are checked for unknown
    parameters, and Ray for being installed, before the first one runs.
    """
    # --param backbone=efficientnet_lite0: a derived profile, "paper+backbone=..."
    prof, params = run_profile(profile, params)
    seeds = [int(s) for s in (seeds if seeds is not None else prof["seeds"])]
    out = Path(out_dir).resolve()
    root = Path(data_root).resolve() if data_root is not None else default_data_root().resolve()
    notebooks = select(discover(notebooks_dir), only)
    if not notebooks:
        raise COFTADInputError(f"no notebooks named NN_*.ipynb in {notebooks_dir}")
    clash = sorted(set(params or {}) & set(REQUIRED_PARAMS))
    if clash:
        raise COFTADInputError(f"--param {', '.join(clash)}: set these with --profile/--seeds/--data-root/--out")
    prep = Path(prep_dir).resolve()
    values = {"PROFILE": prof["name"], "SEEDS": seeds, "DATA_ROOT": str(root), "PREP_DIR": str(prep),
              "OUT_DIR": str(out), **(params or {})}
    check_executor(executor)
    per_nb = {nb: {**values, **({"EXECUTOR": executor} if "EXECUTOR" in parameter_names(nb) else {})}
              for nb in notebooks}
    for nb in notebooks:
        check_parameters(nb, per_nb[nb])
    check_kernel(kernel_name)
    if pack is not None:
        check_pack(pack, "--pack")
    if workers is not None:
        check_workers(workers)
    env = {k: str(v) for k, v in ((ENV_RAY_ADDRESS, address), (ENV_GPUS_PER_CELL, gpus_per_cell), (ENV_PACK, pack),
                                  (ENV_WORKERS, workers)) if v is not None}
    results = []
    for nb in notebooks:
        print(f"[reproduce] {nb.name} ...", flush=True)
        res = execute(nb, out, per_nb[nb], kernel_name, prof["name"], log_output=log_output, env=env)
        print(f"[reproduce] {nb.name}: {res.status} in {res.seconds:.1f} s {res.error}".rstrip(), flush=True)
        results.append(res)
    meta = {"profile": prof["name"], "seeds": seeds, "strict": strict, "data_root": str(root),
            "prep_dir": str(prep), "out_dir": str(out), "executor": executor, "pack": pack or 1,
            "workers": workers,
            "notebooks": [nb.name for nb in notebooks], "params": json.loads(json.dumps(params or {}, default=str))}
    summary = write_summary(results, out, meta)
    print(format_summary(results, summary_roots(meta)))
    print(f"[reproduce] summary: {summary}")
    code = exit_code(results, strict)
    if report:
        from ..report import write_report

        print(f"[reproduce] report: {write_report(out)}")
    if code == EXIT_STRICT:
        print("[reproduce] --strict: datasets or weights are missing (see the summary for how to get them)")
    return code, results
