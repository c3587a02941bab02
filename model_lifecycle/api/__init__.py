"""The typed API: one function per step, a request object in, a result object out.

Nothing here parses argv or prints; failures raise the exceptions of ``model_lifecycle.errors``,
each carrying its exit code (a refusal also carries the step's result). The command line, the
action's entry point and the demo all call these functions::

    from model_lifecycle.api import lifecycle
    change = lifecycle.promote(lifecycle.PromoteRequest("churn", 7, expect_champion="5", reason="approved"))

Modules: ``lifecycle`` (register, stage, promote, archive, rollback), ``gate`` (check, evaluate,
compare), ``cards``, ``retention``, ``status``, ``notify``, ``environments``, ``relay``, ``train``.
Import the module you need: importing this package loads none of them (and no MLflow).
"""
