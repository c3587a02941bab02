"""Registration relay: MLflow webhooks in, GitHub repository_dispatch out, with nothing lost.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("relay")
