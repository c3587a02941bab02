"""Tell the team: a sticky pull-request comment, an approval-request issue, the job summary, and a

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("notify")
