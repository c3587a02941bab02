"""Release a merged pull request's candidate: send the registration workflow its newest candidate version.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("release_candidate")
