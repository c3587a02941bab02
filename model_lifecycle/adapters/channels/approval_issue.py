"""An issue asking the team to review a staged version; an open one gets a comment instead."""

from __future__ import annotations

from typing import Any

from model_lifecycle.adapters import github as github_api
from model_lifecycle.adapters.channels import Channel, Message, _github, register
from model_lifecycle.errors import BadInput


@register
class ApprovalIssue(Channel):
    name = "issue"

    def enabled(self, message: Message) -> bool:
        return message.request_approval

    def check(self, message: Message) -> None:
        if not message.version:
            raise BadInput("a version is needed to request approval", hint="pass --version N")
        _github.check(message, "open the approval request issue")

    def send(self, message: Message) -> dict[str, Any]:
        text, cut = _github.body(message)
        assert message.repo  # check() ran
        title = f"Approve {message.model} v{message.version} for production"
        return {**github_api.request_approval_issue(_github.client(), message.repo, message.model, title, text),
                "cut": cut}
