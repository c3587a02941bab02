"""Monitoring: judge a production window against the version's reference profile; act on a breach.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("monitor")
