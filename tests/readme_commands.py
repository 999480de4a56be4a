"""The README's command blocks, as a reader copies them: extracted and run one by one, as written.

Every fenced ``bash`` block of README.md is a command block. A block directly preceded by a comment
``<!-- not run by the README test: REASON -->`` is skipped (it runs this very test suite, needs a shared folder,
takes many minutes...); every other block runs with ``bash -euo pipefail`` in the folder given, in README order.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*not run by the README test:\s*(.*?)\s*-->\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    skipped: str = ""  # the reason, for a skipped block


class ReadmeCommandFailed(AssertionError):
    """A README command block exited non-zero; the message gives its line, its code and its output."""


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n")
        reason = SKIP.search(before.rsplit("\n", 1)[-1] + "\n") if before else None
        blocks.append(Block(text.count("\n", 0, match.start()) + 1, match.group(1), reason.group(1) if reason else ""))
    return blocks


def run_blocks(blocks: list[Block], cwd: Path, env: dict[str, str], timeout: float = 1800) -> list[str]:
    """Run every block that is not skipped; return their outputs, or raise ReadmeCommandFailed at the first failure."""
    outputs = []
    for block in blocks:
        if block.skipped:
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ReadmeCommandFailed(
                f"README.md line {block.line}: the block\n{block.code}exited {result.returncode}\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        outputs.append(result.stdout)
    return outputs
