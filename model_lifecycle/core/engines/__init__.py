"""Evaluation engines other than the local one (``model_lifecycle.core.evaluation``).

An engine is a module with ``evaluate_holdout(policy, uris, path=None, *, progress=None, ...)`` that
returns an ``evaluation.Streamed`` meaning what the local engine's does: the same metrics, slices,
intervals and insufficient-data flags, so that the verdict, the report and the evaluation run are
built from it unchanged. ``chosen`` picks one per request (``--engine``, else the policy's
``engine``) for the gate and for monitoring, which import it only when chosen: an engine's
libraries are optional extras.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.errors import BadInput

ENGINES = ("local", "spark")


def chosen(requested: str | None, policy: Any, step: str) -> str:
    """The request's engine (``--engine``), else the policy's: a known one, and for ``spark`` an
    installed pyspark (an optional extra), or bad input naming the install command."""
    import importlib.util

    engine = requested or policy.engine
    if engine not in ENGINES:
        raise BadInput(f"unknown engine {engine!r}", hint=f"use one of: {', '.join(ENGINES)}")
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        raise BadInput("the spark engine needs pyspark: pip install 'model-lifecycle[spark]' (the toolkit's action: "
                       "its input `extras: spark`; the runner needs Java 17)",
                       hint=f"or {step} with the local engine (--engine local, or engine: local in the policy)")
    return engine
