"""The simulation study: seeded race-level simulation calibrated to the published margins (:mod:`.simulate`), the
study's replications and fits (:mod:`.replications`), and what they say (:mod:`.montecarlo`). Everything here is
SIMULATED data.
"""
