"""``python -m akim_turnout.run_notebook STAGE NOTEBOOK OUTPUT``: the command every DVC stage runs.

The runner itself is :mod:`akim_turnout.pipeline.runner`; this module is its stable command name.
"""

from akim_turnout.pipeline.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
