"""Evaluation engines other than the local one (``model_lifecycle.core.evaluation``).

An engine is a module with ``evaluate_holdout(policy, uris, path=None, *, progress=None, ...)`` that
returns an ``evaluation.Streamed`` meaning what the local engine's does: the same metrics, slices,
intervals and insufficient-data flags, so that the verdict, the report and the evaluation run are
built from it unchanged. ``api.gate`` chooses one per request (``--engine``, else the policy's
``engine``) and imports it only when chosen: an engine's libraries are optional extras.
"""
