"""Verified roll-out: every serving endpoint must report the new @champion within a deadline.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("verify_rollout")
