"""``python -m akim_turnout.data [RAW_DIR] [--audit]``: check the raw data (see :mod:`akim_turnout.data.audit`)."""

from akim_turnout.data.audit import main

raise SystemExit(main())
