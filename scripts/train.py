"""Example training script: train a scikit-learn classifier and log it to MLflow with its data lineage.

The same command as `model-lifecycle` with its step name; run with --help for the options.
"""

from model_lifecycle.edges.main import script_main

script_main("train")
