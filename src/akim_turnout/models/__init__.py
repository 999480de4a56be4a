"""The statistical models: design matrices from formulas (:mod:`.design`), fits and their inference
(:mod:`.inference`, :mod:`.regional`, :mod:`.race`, :mod:`.resampling`), fast numpy paths for the many small fits of
the simulation study (:mod:`.fastfit`), the regional specification curve (:mod:`.specification`) and the
election-forensics diagnostics (:mod:`.forensics`).
"""
