"""The job summary ($GITHUB_STEP_SUMMARY): the message, and which other channels failed."""

from __future__ import annotations

import os
from typing import Any

from model_lifecycle import settings
from model_lifecycle.adapters.channels import STEP_SUMMARY_LIMIT, Channel, Message, fit, register, utf8_bytes
from model_lifecycle.errors import ServiceError


@register
class JobSummary(Channel):
    name = "summary"
    reports_warnings = True

    def enabled(self, message: Message) -> bool:
        return settings.GITHUB_STEP_SUMMARY.is_set()

    def send(self, message: Message) -> dict[str, Any]:
        path = settings.GITHUB_STEP_SUMMARY.get() or ""
        text = message.markdown.rstrip("\n")
        if message.warnings:
            text += "\n\n#### ⚠️ Notifications not sent (the promotion is not affected)\n\n" + \
                "\n".join(f"- {' '.join(w.split())}" for w in message.warnings)
        try:
            used = os.path.getsize(path) if os.path.exists(path) else 0
            # The limit is per step: what this step wrote before counts too; keep 2 bytes for "\n\n".
            text, cut = fit(text, STEP_SUMMARY_LIMIT - used - 2, message.run_url, measure=utf8_bytes)
            if not text:
                raise ServiceError(f"the job summary is full ({used:,} bytes of {STEP_SUMMARY_LIMIT:,}); nothing added")
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(text + "\n\n")
        except OSError as exc:
            raise ServiceError(f"could not write the job summary: {type(exc).__name__}: {exc.strerror}") from exc
        return {"bytes": utf8_bytes(text) + 2, "cut": cut}
