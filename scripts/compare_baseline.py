"""The gate: evaluate a candidate and the champion on the same hold-out and apply the policy.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("compare_baseline")
