"""Model-promotion toolkit for MLflow and GitHub: one package, four layers.

* ``model_lifecycle.api``: one typed function per step (request in, result out; no argv, no printing);
* ``model_lifecycle.core``: lifecycle, lock, audit, retention, policy, gate rules, evaluation, cards;
* ``model_lifecycle.adapters``: the MLflow registry, GitHub, notification channels, the relay service;
* ``model_lifecycle.edges``: the command line (``model-lifecycle``), the action's entry point, the demo.

Exit codes are part of the interface (see ``model_lifecycle.errors``).
"""

__version__ = "0.9.0"
