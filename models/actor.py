"""Who or what causes a change, as the audit trail records it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from models.enums import Source


@dataclass(frozen=True)
class Actor:
    source: Source
    name: str = ""
    user_id: uuid.UUID | None = None

    def __str__(self) -> str:
        return self.name or self.source.value

    @classmethod
    def system(cls, name: str = "odock-sync") -> Actor:
        return cls(Source.SYSTEM, name)

    @classmethod
    def schedule(cls, job: str) -> Actor:
        return cls(Source.SCHEDULE, job)
