"""Write the input data of the R reference results (tests/reference/inputs/*.csv) from the pipeline's own outputs.

* ``regional_2021.csv``: the ingest stage's ``data/processed/ingest/regional_2021.parquet``, columns region,
  turnout_pct, cands_per_seat, self_share, voters_on_rolls and posts (posts serves as averaging weights for the
  regional marginal effects).
* ``races_simulated.csv``: the simulate stage's ``data/processed/simulate/races.parquet`` (730 races in 14 regions,
  the ``simulate`` section of params.yaml), the races the race_models stage fits, with the stage's stated
  precision (self_share to 6 decimals).

Bring those outputs up to date first (``.venv/bin/dvc repro simulate``).

Floats are written with ``repr`` (shortest string that reads back to the same double), missing values as empty
fields. The text is read back and compared with the frames bit for bit before it is written.

The committed inputs are frozen: they are what this script's first version wrote at commit ecbcc96 (from data/raw
and params.yaml of that commit, simulating the races itself without the stage's rounding; rerunning it there
reproduces both files byte for byte). Since then the raw data gained figures and the simulator changed, so today's
pipeline gives other inputs; the references stay on the frozen ones until someone with R moves them (``--write``,
then ``make reference``, then commit inputs and results together). Without ``--write`` nothing is written.

    python tests/reference/make_inputs.py           # compare the committed inputs with today's pipeline (no writes)
    python tests/reference/make_inputs.py --write   # rewrite inputs/*.csv from today's pipeline
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from akim_turnout.pipeline.paths import project_path, stage_inputs

OUT = Path(__file__).resolve().parent / "inputs"
REGIONAL_COLUMNS = ["region", "turnout_pct", "cands_per_seat", "self_share", "voters_on_rolls", "posts"]
RACE_COLUMNS = ["region", "voted", "registered", "n_candidates", "self_share", "any_woman"]
SOURCES = {
    "regional_2021.csv": (stage_inputs("ingest").data / "regional_2021.parquet", REGIONAL_COLUMNS),
    "races_simulated.csv": (stage_inputs("simulate").data / "races.parquet", RACE_COLUMNS),
}


def pipeline_frames() -> dict[str, pd.DataFrame]:
    """File name -> the columns of the pipeline output it is taken from; a clear error when an output is missing."""
    frames = {}
    for name, (source, columns) in SOURCES.items():
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing: run `.venv/bin/dvc repro simulate` first")
        frames[name] = pd.read_parquet(source)[columns].reset_index(drop=True)
    return frames


def simulation_seed() -> int:
    return int(yaml.safe_load(project_path("params.yaml").read_text())["simulate"]["seed"])


def exact_csv(frame: pd.DataFrame, name: str = "frame") -> str:
    """CSV text with floats as repr and NaN as an empty field; verified by reading it back."""
    text = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            text[column] = [("" if np.isnan(v) else repr(float(v))) for v in frame[column]]
        else:
            text[column] = frame[column].astype(str)
    csv = text.to_csv(index=False, lineterminator="\n")
    back = pd.read_csv(io.StringIO(csv), keep_default_na=False, na_values=[""])
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            a, b = frame[column].to_numpy(float), back[column].to_numpy(float)
            if not np.array_equal(a, b, equal_nan=True):
                raise AssertionError(f"{name}: {column} does not read back bit for bit")
        elif (frame[column].astype(str).to_numpy() != back[column].astype(str).to_numpy()).any():
            raise AssertionError(f"{name}: {column} does not read back")
    return csv


def derived_inputs() -> tuple[dict[str, str], str]:
    """File name -> CSV text as today's pipeline derives it, and a one-line description."""
    frames = pipeline_frames()
    texts = {name: exact_csv(frame, name) for name, frame in frames.items()}
    races = frames["races_simulated.csv"]
    summary = (
        f"{len(frames['regional_2021.csv'])} regions; {len(races)} races in {races['region'].nunique()} regions, "
        f"simulation seed {simulation_seed()}"
    )
    return texts, summary


def differences(texts: dict[str, str], folder: Path) -> dict[str, str]:
    """File name -> how the file in ``folder`` differs from ``texts`` (absent when identical)."""
    found = {}
    for name, text in texts.items():
        path = folder / name
        if not path.is_file():
            found[name] = "missing"
            continue
        old, new = path.read_text().splitlines(), text.splitlines()
        if old != new or path.read_bytes() != text.encode():
            changed = sum(a != b for a, b in zip(old, new, strict=False)) + abs(len(old) - len(new))
            found[name] = f"{changed} of {len(new) - 1} data rows differ"
    return found


def main(argv: list[str] | None = None, folder: Path = OUT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the inputs (default: only compare)")
    args = parser.parse_args(argv)
    try:
        texts, summary = derived_inputs()
    except FileNotFoundError as missing:
        if args.write:
            raise
        print(f"note: the frozen reference inputs were not compared with the pipeline ({missing})")
        return 0
    found = differences(texts, folder)
    if args.write:
        folder.mkdir(parents=True, exist_ok=True)
        for name in found:
            (folder / name).write_text(texts[name])
        print(f"wrote {', '.join(found) or 'nothing (already current)'} in {folder} ({summary})")
    elif found:
        detail = "; ".join(f"{name}: {how}" for name, how in found.items())
        print(
            f"note: the frozen reference inputs differ from what today's pipeline derives ({detail}); the references "
            f"stay on the frozen inputs (tests/reference/make_inputs.py --write moves them, see its docstring)"
        )
    else:
        print(f"the reference inputs are what today's pipeline derives ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
