"""``python -m kedro_vertex_runner.entrypoint``: the command every compiled task runs (compiled specs name it).

The task's code is :mod:`kedro_vertex_runner.task.entrypoint`; this package only keeps the command's name.
"""

from __future__ import annotations

from ..task.entrypoint import main

__all__ = ["main"]
