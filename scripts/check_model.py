"""Model checks before the gate: signature, hold-out conformance, finite in-range predictions,

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("check_model")
