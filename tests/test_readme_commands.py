"""The README's command blocks are found as a reader sees them, and a broken one fails naming itself.

They are run, as written, in a fresh copy of the project by tests/test_pipeline.py (its `built` fixture)."""

from __future__ import annotations

import os

import pytest
from readme_commands import ReadmeCommandFailed, readme_blocks, run_blocks

from akim_turnout.pipeline.paths import project_path

SAMPLE = """# Demo

```bash
echo first > out.txt
```

<!-- not run by the README test: needs a cluster -->
```bash
exit 3
```

```bash
grep -q first out.txt
cat no-such-file.txt   # a broken command
```
"""


def test_blocks_and_skip_markers_are_found() -> None:
    blocks = readme_blocks(SAMPLE)
    assert [(b.line, b.skipped) for b in blocks] == [(3, ""), (8, "needs a cluster"), (12, "")]
    assert blocks[0].code == "echo first > out.txt\n"


def test_a_broken_readme_command_fails_naming_its_line_and_command(tmp_path) -> None:
    with pytest.raises(ReadmeCommandFailed) as failure:
        run_blocks(readme_blocks(SAMPLE), tmp_path, dict(os.environ))
    message = str(failure.value)
    assert message.startswith("README.md line 12: the block\ngrep -q first out.txt\ncat no-such-file.txt")
    assert "exited 1" in message and "No such file or directory" in message
    assert (tmp_path / "out.txt").read_text() == "first\n", "blocks before it ran, the skipped one did not stop it"


def test_the_readme_documents_the_workflow_in_runnable_blocks() -> None:
    blocks = readme_blocks(project_path("README.md").read_text())
    run = "".join(b.code for b in blocks if not b.skipped)
    for command in (
        "make reproduce",
        "dvc repro",
        "dvc exp run -n fewer-draws -S",
        "dvc exp show --only-changed",
        "dvc metrics show",
        "papermill",
        "python -m akim_turnout.data data/raw",
    ):
        assert command in run, f"the README's tested blocks lack {command!r}"
    assert all(b.skipped for b in blocks if "make test" in b.code), "running make test from its own test would recurse"
