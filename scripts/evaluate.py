"""Evaluate one model on the policy's hold-out: metrics overall and per slice, with support and intervals.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("evaluate")
