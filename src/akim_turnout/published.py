"""Conventions of the published figures shared by the module that builds the processed tables
(:mod:`akim_turnout.ingest`) and the one every later stage reads them through (:mod:`akim_turnout.data`): the
identifier of the 2021 round and the ratio of two published counts. A leaf module, so that neither of the two
imports the other for them."""

from __future__ import annotations

import pandas as pd

ROUND_2021 = "2021-07-25_rural"


def ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, NaN where either is missing or the denominator is 0."""
    return numerator.astype(float) / denominator.astype(float).where(denominator > 0)
