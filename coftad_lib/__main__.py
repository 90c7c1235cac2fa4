"""``python -m coftad_lib {fit,score,evaluate}``: see :mod:`coftad_lib.cli`."""

from coftad_lib.cli import main

raise SystemExit(main())
