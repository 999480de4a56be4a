"""Write the input data of the R reference results (tests/reference/inputs/*.csv).

* ``regional_2021.csv``: the 2021 regional table as ``akim_turnout.data.processed`` builds it from ``data/raw``
  (``load_raw`` + ``build_processed``), columns region, turnout_pct, cands_per_seat, self_share,
  voters_on_rolls and posts (posts serves as averaging weights for the regional marginal effects).
* ``races_simulated.csv``: one simulated race data set of the real design (730 races in 14 regions) from
  ``akim_turnout.study.simulate.simulate_races`` with the ``simulate`` section of params.yaml (settings and seed).

Floats are written with ``repr`` (shortest string that reads back to the same double), missing values as empty
fields. The files are read back and compared with the frames bit for bit before the script exits.
Run from the project root: ``python tests/reference/make_inputs.py`` (``make reference`` does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from akim_turnout.data import ingest
from akim_turnout.data import processed as data
from akim_turnout.study import simulate

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "inputs"
REGIONAL_COLUMNS = ["region", "turnout_pct", "cands_per_seat", "self_share", "voters_on_rolls", "posts"]
RACE_COLUMNS = ["region", "voted", "registered", "n_candidates", "self_share", "any_woman"]


def regional_and_races() -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The regional input table, the simulated races and the seed used."""
    processed = ingest.build_processed(ingest.load_raw(ROOT / "data" / "raw"))
    regional = processed["regional_2021"]
    national_row = processed["national"].set_index("round_id").loc[data.ROUND_2021]
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["simulate"]
    regions_input, national_input = simulate.inputs_from_published(regional, national_row)
    settings = simulate.SimulationSettings.from_mapping(section["settings"])
    races = simulate.simulate_races(regions_input, national_input, settings, seed=section["seed"])
    return regional[REGIONAL_COLUMNS].copy(), races[RACE_COLUMNS].copy(), int(section["seed"])


def write_exact(frame: pd.DataFrame, path: Path) -> None:
    """CSV with floats as repr and NaN as an empty field; verified by reading it back."""
    text = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            text[column] = [("" if np.isnan(v) else repr(float(v))) for v in frame[column]]
        else:
            text[column] = frame[column].astype(str)
    text.to_csv(path, index=False, lineterminator="\n")
    back = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            a, b = frame[column].to_numpy(float), back[column].to_numpy(float)
            if not np.array_equal(a, b, equal_nan=True):
                raise AssertionError(f"{path.name}: {column} does not read back bit for bit")
        elif (frame[column].astype(str).to_numpy() != back[column].astype(str).to_numpy()).any():
            raise AssertionError(f"{path.name}: {column} does not read back")


def main() -> int:
    regional, races, seed = regional_and_races()
    OUT.mkdir(parents=True, exist_ok=True)
    write_exact(regional, OUT / "regional_2021.csv")
    write_exact(races, OUT / "races_simulated.csv")
    print(
        f"wrote {OUT / 'regional_2021.csv'} ({len(regional)} regions) and "
        f"{OUT / 'races_simulated.csv'} ({len(races)} races, {races['region'].nunique()} regions, seed {seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
