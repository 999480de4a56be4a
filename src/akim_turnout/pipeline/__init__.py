"""The machinery that runs the study: where each stage reads and writes (:mod:`.paths`), its parameters and their
rules (:mod:`.parameters`), the stage runner (:mod:`.runner`), output rounding (:mod:`.outputs`), the stages' code
dependencies (:mod:`.deps`), the benchmark (:mod:`.bench`) and the experiment sweep (:mod:`.sweep`).
"""
