"""Show a model's versions with their aliases, state and lineage; its audit history; who was champion when.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("status")
