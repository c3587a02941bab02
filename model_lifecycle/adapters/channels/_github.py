"""What the two GitHub channels share: input checks and a client that never repeats a write."""

from __future__ import annotations

from typing import Any

from model_lifecycle import settings
from model_lifecycle.adapters import github as github_api
from model_lifecycle.adapters.channels import GITHUB_BODY_LIMIT, Message, fit, utf16_units
from model_lifecycle.errors import BadInput

def check(message: Message, what: str) -> None:
    """Bad input for a GitHub channel, raised before anything is sent."""
    if not message.repo:
        raise BadInput(f"a repository is needed to {what}",
                       hint="pass --repo OWNER/REPO, or run inside GitHub Actions ($GITHUB_REPOSITORY)")
    if message.repo.count("/") != 1 or not all(message.repo.split("/")):
        raise BadInput(f"repository {message.repo!r} must look like OWNER/REPO")
    if not settings.GITHUB_TOKEN.get():
        raise BadInput(f"no GitHub token to {what}", hint="pass github-token (GITHUB_TOKEN) to the step")


def client() -> Any:
    """The toolkit's GitHub client: bounded retries that never repeat a POST."""
    return github_api.connect()


def body(message: Message) -> tuple[str, bool]:
    """The message fitted to GitHub's body limit, leaving room for the sticky marker line."""
    marker = github_api.MARKER.format(model=message.model)
    return fit(message.markdown, GITHUB_BODY_LIMIT - utf16_units(marker) - 1, message.run_url)
