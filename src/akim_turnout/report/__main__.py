"""``python -m akim_turnout.report NOTEBOOK HTML``: export the executed report notebook without code
(see :func:`akim_turnout.report.html.main`)."""

from akim_turnout.report.html import main

raise SystemExit(main())
