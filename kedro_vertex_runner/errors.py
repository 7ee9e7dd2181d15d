"""The one exception type the plugin raises for user-facing problems.

Every ``PluginError`` carries a single line that names the file, key or value at fault and says what to do.
The CLI and ``VertexRunner`` print that line and exit non-zero instead of showing a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn


class PluginError(Exception):
    """A problem the user can fix: bad config, bad input, missing credentials, a failed job."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        # keep the message on one line whatever the caller passed in
        super().__init__(" ".join(str(message).split()))
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(PluginError):
    """Invalid or missing ``vertexai.yml`` configuration."""


def report_error(problem: object) -> None:
    """Print ``Error: <problem>`` on stderr: how every command and task tells the user what went wrong."""
    print(f"Error: {problem}", file=sys.stderr)


def exit_with(exc: PluginError) -> NoReturn:
    """Print ``exc`` as one ``Error: …`` line on stderr and exit with its code (never a traceback)."""
    report_error(exc)
    raise SystemExit(exc.exit_code) from None
