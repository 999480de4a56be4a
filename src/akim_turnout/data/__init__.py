"""The published figures: raw tables checked against their schema (:mod:`.validation`), their provenance audited
(:mod:`.audit`), tidied into the processed tables of the ``ingest`` stage (:mod:`.ingest`), region names made
canonical (:mod:`.regions`), and read back by later stages (:mod:`.processed`).

``python -m akim_turnout.data [RAW_DIR] [--audit]`` checks the raw data (see :mod:`.audit`).
"""
