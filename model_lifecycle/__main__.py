"""``python -m model_lifecycle STEP ...``: the same as the ``model-lifecycle`` command."""

from model_lifecycle.edges.main import console_main

console_main()
