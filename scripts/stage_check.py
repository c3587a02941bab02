"""Staging deployment check: serve the version, then serving parity, a bounded load, malformed requests.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("stage_check")
