"""Reproducible models of voter turnout in Kazakhstan's rural akim elections of 25 July 2021."""

__version__ = "0.1.0"
