"""The one parser of a model's right-hand side (``race_models.formula_rhs``, the regional predictors).

Pure Python (``re`` only), so the runner checks a formula before any kernel starts with the very rules the fits use.
A right-hand side is terms joined by ``+``, in any spacing; each term is ``column``, ``C(column)`` (treatment
dummies) or ``np.log(column)`` (``log(column)`` is read as ``np.log(column)``). The intercept is always included.
:func:`parse_formula` returns a :class:`Formula`: the terms in order, the region term(s), the candidate-mix terms
(every term that is not a ``C(...)``) and one canonical spelling (``" + "`` between terms), so
``C(region)+np.log(n_candidates)+self_share+any_woman`` and the default spelling are the same formula.
:mod:`akim_turnout.models.design` builds design matrices from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_TERM_PATTERNS = (
    ("categorical", re.compile(r"^C\(\s*(\w+)\s*\)$")),
    ("log", re.compile(r"^(?:np\.)?log\(\s*(\w+)\s*\)$")),
    ("numeric", re.compile(r"^(\w+)$")),
)


class FormulaError(ValueError):
    """A right-hand side the project cannot fit; the message names the term."""


@dataclass(frozen=True)
class Term:
    """One term: ``kind`` (``categorical``, ``log`` or ``numeric``), the data ``column`` and its canonical ``name``
    (``C(region)``, ``np.log(n_candidates)``, ``self_share``)."""

    kind: str
    column: str
    name: str


@dataclass(frozen=True)
class Formula:
    """A parsed right-hand side."""

    terms: tuple[Term, ...]

    @property
    def rhs(self) -> str:
        """The canonical spelling: term names joined by ``" + "``."""
        return " + ".join(term.name for term in self.terms)

    @property
    def names(self) -> list[str]:
        return [term.name for term in self.terms]

    @property
    def categorical(self) -> list[Term]:
        """The ``C(column)`` terms (in this project: the region dummies)."""
        return [term for term in self.terms if term.kind == "categorical"]

    @property
    def mix_terms(self) -> list[str]:
        """The names of every term that is not ``C(...)``: the candidate mix."""
        return [term.name for term in self.terms if term.kind != "categorical"]

    @property
    def columns(self) -> list[str]:
        """The data columns the terms read, each once, in order."""
        return list(dict.fromkeys(term.column for term in self.terms))

    def has_region(self, cluster: str = "region") -> bool:
        """Whether ``C(cluster)`` is a term."""
        return any(term.kind == "categorical" and term.column == cluster for term in self.terms)

    def without(self, names: Sequence[str]) -> Formula:
        """The formula without the terms named in ``names`` (canonical names)."""
        return Formula(tuple(term for term in self.terms if term.name not in set(names)))

    def __str__(self) -> str:
        return self.rhs


def parse_term(piece: str) -> Term:
    """One term, any spacing inside; :class:`FormulaError` for anything else."""
    text = piece.strip()
    for kind, pattern in _TERM_PATTERNS:
        match = pattern.match(text)
        if match:
            column = match.group(1)
            name = {"categorical": f"C({column})", "log": f"np.log({column})"}.get(kind, column)
            return Term(kind, column, name)
    raise FormulaError(f"Unsupported term {text!r}: use column, C(column) or np.log(column)")


def parse_formula(formula_rhs: str | Sequence[str] | Formula) -> Formula:
    """A right-hand side (``"a + C(b)"`` in any spacing, or a list of terms) as a :class:`Formula`.

    Refuses an empty formula, an empty term (``"a + + b"``) and a term given twice.
    """
    if isinstance(formula_rhs, Formula):
        return formula_rhs
    pieces = formula_rhs.split("+") if isinstance(formula_rhs, str) else list(formula_rhs)
    if not pieces or all(not str(p).strip() for p in pieces):
        raise FormulaError("empty formula: give at least one term")
    if any(not str(p).strip() for p in pieces):
        raise FormulaError(f"empty term in {formula_rhs!r}")
    terms = tuple(parse_term(str(p)) for p in pieces)
    names = [term.name for term in terms]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FormulaError(f"term(s) given twice in {formula_rhs!r}: {', '.join(repeated)}")
    return Formula(terms)
