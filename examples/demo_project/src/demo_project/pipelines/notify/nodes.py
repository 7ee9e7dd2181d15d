from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def log_run_finished(report_title: str) -> None:
    """Log a completion message. No external calls."""
    logger.info("Pipeline finished: %s", report_title)
