"""Create or update the `staging` and `production` environments: required reviewers (the human

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("setup_environments")
