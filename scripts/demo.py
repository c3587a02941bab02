"""End-to-end demo: train two models and take them from registration to production and back.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("demo")
