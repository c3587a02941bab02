"""What every step's result has in common: a JSON form, an exit code and an optional job summary.

Results are dataclasses; ``to_dict`` gives the documented ``--json`` document (``ok`` first, then
the fields), and ``summary`` (never part of the JSON) is Markdown the edges append to the job
summary under GitHub Actions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from model_lifecycle.errors import EXIT_OK

_HIDDEN = ("summary",)


class Result:
    """Mixin of every result dataclass."""

    exit_code: ClassVar[int] = EXIT_OK
    # Optional fields that are left out of the JSON while they are None (as the documented output does).
    omit_when_none: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.name not in _HIDDEN}
        data = {k: _plain(v) for k, v in data.items() if not (k in self.omit_when_none and v is None)}
        return {"ok": True, **data}

    @property
    def markdown_summary(self) -> str | None:
        return getattr(self, "summary", None) or None


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict() if isinstance(value, Result) else dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
