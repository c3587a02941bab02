"""Move a model version between lifecycle states: staging (@challenger), production (@champion), archived.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("transition")
