"""The runner: ``python -m coftad_lib.reproduce --profile smoke|paper [options]``.

- :mod:`~coftad_lib.reproduce.runner`: runs the notebook series with papermill (one
  :class:`~coftad_lib.paper.context.RunContext` for all of them), writes the summary and report.
- :mod:`~coftad_lib.reproduce.plan`: ``--plan``, the cells each notebook's spec needs and their time.
- :mod:`~coftad_lib.reproduce.prefill`: ``--cells-only``, the same cells computed without Jupyter.
- :mod:`~coftad_lib.reproduce.notebook_params`: reads and checks the notebooks' parameters cells.

What notebooks import lives in :mod:`coftad_lib.paper`; importing this package imports neither
papermill nor the runner.
"""
