"""Session set-up shared by unit tests and nbval: notebook outputs go to a scratch folder, never to reports/."""

from __future__ import annotations

import os
import tempfile

import matplotlib

matplotlib.use("Agg")  # tests draw figures without a display; notebooks never set a backend themselves


def pytest_configure(config) -> None:
    if not os.environ.get("AKIM_OUTPUT_ROOT"):
        os.environ["AKIM_OUTPUT_ROOT"] = tempfile.mkdtemp(prefix="akim-test-outputs-")


def pytest_collection_modifyitems(config, items) -> None:
    """The pipeline tests first (the slowest file): run in parallel (`make test`), they start at once while the
    other workers take the rest. The order within each file is kept."""
    items.sort(key=lambda item: item.get_closest_marker("pipeline") is None)
