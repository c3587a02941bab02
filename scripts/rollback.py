"""Roll production back: move @champion to the previous champion recorded in the audit record.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("rollback")
