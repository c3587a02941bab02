"""Model cards that gate promotion: init a skeleton, build from MLflow facts, check, diff, export.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("model_card")
