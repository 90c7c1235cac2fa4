"""Execute the notebook series ``notebooks/NN_*.ipynb`` in order with papermill.

Each notebook gets the parameters PROFILE, SEEDS, DATA_ROOT and OUT_DIR (plus any ``--param``),
which must be assigned in its ``parameters`` cell (checked before anything runs). The executed
copies go to ``<out>/executed/``; each notebook writes ``<out>/status/<name>.json`` through
:func:`coftad_lib.reproduce.record_status`. The runner then writes ``<out>/runs/summary.md`` (and
``summary.json``), publishes the executed notebooks to ``<out>/notebooks/`` (cleaned, git-ignored) and renders
them to ``<out>/html/`` (committed: REPORT.md links them), and writes the report ``<out>/REPORT.md``. The console gets an estimate
before the first notebook and a line at least every ~25 s while one runs
(:mod:`~coftad_lib.reproduce.progress`).

Reruns execute every selected notebook again; the work inside is cached per cell, so they are fast.

Exit codes of :func:`run_series` (and the CLI): 0 all ok; 1 a notebook failed (or wrote no
status); 3 ``strict`` and some dataset or weights were missing. Bad arguments raise
:class:`~coftad_lib.errors.COFTADInputError` before any notebook runs (CLI exit code 2); Ctrl-C
propagates as KeyboardInterrupt (the shell sees 130). docs/RUNNING.md, "Exit status".
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.cache import atomic_write_json, atomic_write_text
from ..engine.migrate import ensure_migrated
from ..engine.status import display_path, read_status, relative_to_roots, status_path, summary_roots
from ..errors import COFTADInputError
from ..kernel_quiet import quiet_kernel_kwargs
from ..notebook_publish import PUBLISHED_DIR, PublishResult, publish_executed
from ..paper.context import RunContext
from ..paper.migration import migrate_run
from .data_fetch import fetch_data
from .notebook_html import HTML_DIR, render_html
from .notebook_params import check_parameters, parameter_names
from .progress import Heartbeat, notebook_line, preflight, say_reproduce
from .series import build_context, default_data_root, discover, out_lock, select  # noqa: F401  (re-exported)

#: the parameters every notebook of the series must declare (:meth:`RunContext.notebook_params`)
REQUIRED_PARAMS: tuple[str, ...] = ("PROFILE", "SEEDS", "DATA_ROOT", "PREP_DIR", "OUT_DIR", "NOTEBOOK", "OVERRIDES")
#: the parameters of notebooks that run cells (those that declare EXECUTOR)
EXECUTOR_PARAMS: tuple[str, ...] = ("EXECUTOR", "EXECUTOR_OPTIONS")

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


def execute(nb_path: Path, out_dir: Path, params: Mapping[str, Any], kernel_name: str,
            profile: str, log_output: bool = False) -> NotebookResult:
    """Run one notebook with papermill into ``out_dir/executed``; read the status it wrote.

    The executed copy is written beside its final name and renamed into place, so a reader never
    sees half a notebook and a killed run leaves the previous copy whole.
    """
    import papermill as pm

    name = nb_path.stem
    executed = out_dir / "executed" / nb_path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.parent / f".{nb_path.stem}.{uuid.uuid4().hex}.tmp.ipynb"
    stale = status_path(out_dir, name)
    if stale.exists():
        stale.unlink()  # a status left from an earlier run must not pass for this one
    t0 = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(str(nb_path), str(tmp), parameters=dict(params), kernel_name=kernel_name,
                            cwd=str(nb_path.parent), progress_bar=False, log_output=log_output,
                            **quiet_kernel_kwargs())
    except pm.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel death, timeouts: report and go on with the next notebook
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if tmp.exists():
            os.replace(tmp, executed)  # papermill writes the failed notebook too: keep it to read
    seconds = round(time.perf_counter() - t0, 1)
    st = read_status(out_dir, name)
    if error:
        status = "failed"
    elif st is None:
        status, error = "no status", "notebook did not call record_status() (run.record_status)"
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
    # as summary.md: no machine's folders (the roots relative to the working folder, the rest to the roots)
    notebooks = json.loads(relative_to_roots(json.dumps([asdict(r) for r in results]), roots))
    atomic_write_json(runs / "summary.json", {"meta": shown, "notebooks": notebooks})
    return atomic_write_text(runs / "summary.md", "\n".join(head) + "\n")


def notebook_params(ctx: RunContext, nb: Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters notebook ``nb`` gets: the context's (EXECUTOR / EXECUTOR_OPTIONS only where the
    notebook declares EXECUTOR) and the other ``--param`` values."""
    values = {**dataclasses.replace(ctx, notebook=nb.stem).notebook_params(), **extra}
    if "EXECUTOR" not in parameter_names(nb):
        for key in EXECUTOR_PARAMS:
            values.pop(key)
    return values


def run_notebooks(ctx: RunContext, notebooks: Sequence[Path], per_nb: Mapping[Path, Mapping[str, Any]],
                  kernel_name: str, log_output: bool = False) -> list[NotebookResult]:
    """Execute ``notebooks`` in order with :func:`execute`, saying on the console what happens.

    First one line with the cells to run and cached and the expected time
    (:func:`~coftad_lib.reproduce.progress.preflight`); then per notebook a start and a finish line
    with the run's elapsed time, and between them a :class:`~coftad_lib.reproduce.progress.Heartbeat`
    (new cells, elapsed time; never more than ~25 s of silence).
    """
    out, n = Path(ctx.out_dir), len(notebooks)
    to_run = preflight(ctx, notebooks, say_reproduce)
    start = time.monotonic()
    results = []
    for i, nb in enumerate(notebooks, 1):
        say_reproduce(notebook_line(i, n, nb.stem, start, time.monotonic(), "starting", to_run))
        with Heartbeat(nb.stem, Path(ctx.cache_dir) / "cells", to_run.get(nb.stem), say_reproduce):
            res = execute(nb, out, per_nb[nb], kernel_name, ctx.name, log_output=log_output)
        what = f"{res.status} in {res.seconds:.1f} s" + (f", {res.error}" if res.error else "")
        say_reproduce(notebook_line(i, n, nb.stem, start, time.monotonic(), what))
        results.append(res)
    return results


def publish_run(ctx: RunContext, results: Sequence[NotebookResult], repo: Path) -> PublishResult | None:
    """Publish this run's executed notebooks to ``<out>/notebooks/`` (:func:`~coftad_lib.notebook_publish.publish_executed`).

    ``<out>/executed/`` is git-ignored (it changes on every run); the published copies, cleaned
    of timestamps and within a size budget, are rendered to ``<out>/html/`` pages
    (:func:`~coftad_lib.reproduce.notebook_html.render_html`), which are committed so that
    REPORT.md's links resolve on a clone. Machine paths are redacted: the repository becomes ``.``, the data and
    prep folders ``<DATA_ROOT>`` / ``<PREP_DIR>``, an output folder outside the repository
    ``<OUT_DIR>``, the home folder ``~``. A failure to publish is reported, never raised: the
    notebooks ran and their summary is written.
    """
    out = Path(ctx.out_dir)
    names = [r.name for r in results if r.executed and Path(r.executed).is_file()]
    if not names:
        return None
    redact = {str(repo): ".", str(ctx.data_root): "<DATA_ROOT>", str(ctx.prep_dir): "<PREP_DIR>",
              str(Path.home()): "~"}
    if not out.resolve().is_relative_to(repo):
        redact[str(out)] = "<OUT_DIR>"
    redact = {k: v for k, v in redact.items() if len(Path(k).parts) > 1}  # never "/": it is in every path
    try:
        pub = publish_executed(out / "executed", out / PUBLISHED_DIR, names=names, redact=redact)
    except Exception as exc:  # a budget overrun, an unreadable executed copy: say so and go on
        say_reproduce(f"executed notebooks not published to {out / PUBLISHED_DIR}: {exc}")
        return None
    extra = f"; {pub.images_left_out} images left out" if pub.images_left_out else ""
    say_reproduce(f"published {len(pub.files)} executed notebooks to {out / PUBLISHED_DIR} "
                  f"({pub.total_bytes / 1024:.0f} KiB{extra})")
    banner = (f"Executed notebook of the <code>{ctx.name}</code> profile, rendered from "
              f"<code>{PUBLISHED_DIR}/{{name}}.ipynb</code>. Regenerate: <code>make reproduce "
              f"PROFILE={ctx.name}</code>; open the notebook itself in <code>notebooks/</code>.")
    try:  # HTML pages are what gets committed (house rule: no notebook with outputs in git)
        page = render_html(out / PUBLISHED_DIR, out / HTML_DIR, names=names, banner=banner)
        say_reproduce(f"rendered {len(page.files)} notebooks to {out / HTML_DIR} ({page.total_bytes / 1024:.0f} KiB)")
    except Exception as exc:  # nbconvert missing or a budget overrun: the .ipynb copies are there
        say_reproduce(f"executed notebooks not rendered to {out / HTML_DIR}: {exc}")
    return pub


def run_meta(ctx: RunContext, notebooks: Sequence[Path], strict: bool, params: Mapping[str, Any]) -> dict[str, Any]:
    """The run's settings as ``runs/summary.json`` records them (``meta``)."""
    return {"profile": ctx.name, "seeds": list(ctx.seeds), "strict": strict, "data_root": ctx.data_root,
            "prep_dir": ctx.prep_dir, "out_dir": ctx.out_dir, "executor": ctx.executor,
            "pack": ctx.executor_options.get("pack", 1), "workers": ctx.executor_options.get("workers"),
            "notebooks": [nb.name for nb in notebooks], "overrides": dict(ctx.overrides),
            "params": json.loads(json.dumps(params, default=str))}


def run_series(profile: str, *, only: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
               strict: bool = False, data_root: str | os.PathLike | None = None,
               prep_dir: str | os.PathLike = DEFAULT_PREP_DIR, out_dir: str | os.PathLike | None = None,
               params: Mapping[str, Any] | None = None, notebooks_dir: str | os.PathLike = "notebooks",
               kernel_name: str = "python3", log_output: bool = False, report: bool = True,
               executor: str | None = None, address: str | None = None, gpus_per_cell: float | None = None,
               pack: int | None = None, workers: int | None = None, download: bool | None = None,
               data_mirror: str | None = None, publish: bool = True) -> tuple[int, list[NotebookResult]]:
    """Run the selected notebooks in order; write the summary and the report; return (exit code, results).

    One :class:`~coftad_lib.paper.context.RunContext` (:func:`~coftad_lib.reproduce.series.build_context`)
    gives every notebook PROFILE, SEEDS, DATA_ROOT, PREP_DIR and OUT_DIR (absolute paths), NOTEBOOK
    (its stem), OVERRIDES (``params`` named in :data:`~coftad_lib.paper.profiles.OVERRIDE_KEYS`:
    ``backbone``, ``steps``, ...), and EXECUTOR / EXECUTOR_OPTIONS (``pack``, ``workers``,
    ``address``, ``gpus_per_cell``) to the notebooks that run cells; other ``params`` go as they
    are. All selected notebooks are checked for unknown parameters, and Ray for being installed,
    before the first one runs. A second runner on the same ``out_dir`` fails at once
    (:func:`~coftad_lib.reproduce.series.out_lock`). Then the public datasets the notebooks need and
    lack are fetched into the data root (:func:`~coftad_lib.reproduce.data_fetch.fetch_data`;
    ``download=False`` fetches nothing, ``data_mirror`` names a mirror). Before the first notebook
    one line gives the cells to run and cached and, from timings measured earlier, the expected
    time; while each runs, a heartbeat reports new cells and the elapsed time
    (:mod:`~coftad_lib.reproduce.progress`). Afterwards the executed notebooks are published to
    ``<out>/notebooks/`` (``publish=False``: not) and the report links those copies.
    """
    ctx, params = build_context(profile, seeds=seeds, data_root=data_root, prep_dir=prep_dir, out_dir=out_dir,
                                params=params, executor=executor, address=address, gpus_per_cell=gpus_per_cell,
                                pack=pack, workers=workers)
    notebooks = select(discover(notebooks_dir), only)
    if not notebooks:
        raise COFTADInputError(f"no notebooks named NN_*.ipynb in {notebooks_dir}")
    clash = sorted(set(params) & {*REQUIRED_PARAMS, *EXECUTOR_PARAMS})
    if clash:
        raise COFTADInputError(f"--param {', '.join(clash)}: set these with --profile/--seeds/--data-root/--out/--executor")
    per_nb = {nb: notebook_params(ctx, nb, params) for nb in notebooks}
    for nb in notebooks:
        check_parameters(nb, per_nb[nb])
    check_kernel(kernel_name)
    out = Path(ctx.out_dir)
    with out_lock(out):
        moved = ensure_migrated(ctx.cache_dir) + migrate_run(ctx)
        if moved:
            print(f"[reproduce] {moved} cached cells moved to keys without the profile name", flush=True)
        fetch_data(ctx, notebooks, download=download, mirror=data_mirror)
        results = run_notebooks(ctx, notebooks, per_nb, kernel_name, log_output)
        meta = run_meta(ctx, notebooks, strict, params)
        summary = write_summary(results, out, meta)
        print(format_summary(results, summary_roots(meta)))
        print(f"[reproduce] summary: {summary}")
        code = exit_code(results, strict)
        if publish:
            publish_run(ctx, results, Path(notebooks_dir).resolve().parent)
        if report:
            from ..paper.report import write_report

            print(f"[reproduce] report: {write_report(out)}")
    if code == EXIT_STRICT:
        print("[reproduce] --strict: datasets or weights are missing (see the summary for how to get them)")
    return code, results
