"""Retention: archive old versions, never the champion, the challenger, or a recent (previous) champion.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("archive")
