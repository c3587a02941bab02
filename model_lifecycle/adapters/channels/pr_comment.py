"""One sticky pull-request comment per model: edited when ours exists, created otherwise."""

from __future__ import annotations

from typing import Any

from model_lifecycle.adapters import github as github_api
from model_lifecycle.adapters.channels import Channel, Message, _github, register


@register
class PullRequestComment(Channel):
    name = "comment"

    def enabled(self, message: Message) -> bool:
        return message.pr is not None

    def check(self, message: Message) -> None:
        _github.check(message, f"comment on pull request #{message.pr}")

    def send(self, message: Message) -> dict[str, Any]:
        text, cut = _github.body(message)
        assert message.repo and message.pr is not None  # check() ran
        done = github_api.upsert_comment(_github.client(), message.repo, message.pr, message.model, text)
        return {**done, "cut": cut}
