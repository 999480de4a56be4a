"""What readers see: figure style and saving (:mod:`.figures`), publication tables (:mod:`.tables`), the words for
internal names (:mod:`.labels`) and the HTML report's building blocks and export (:mod:`.html`).

``python -m akim_turnout.report NOTEBOOK HTML`` exports an executed report notebook without code (see :mod:`.html`).
"""
