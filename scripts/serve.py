"""Serve the version behind an alias with MLflow's scoring app; follow the alias; capture predictions.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("serve")
