"""Entry point of the composite action: one `command` input names the lifecycle step.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("action_entry")
