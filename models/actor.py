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

    def to_json(self) -> dict[str, str | None]:
        """The actor as a task's argument (a worker audits in their name)."""
        user_id = str(self.user_id) if self.user_id else None
        return {"source": self.source.value, "name": self.name, "user_id": user_id}

    @classmethod
    def from_json(cls, data: dict[str, str | None]) -> Actor:
        user_id = uuid.UUID(data["user_id"]) if data.get("user_id") else None
        return cls(Source(str(data["source"])), data.get("name") or "", user_id)

    @classmethod
    def system(cls, name: str = "odock-sync") -> Actor:
        return cls(Source.SYSTEM, name)

    @classmethod
    def schedule(cls, job: str) -> Actor:
        return cls(Source.SCHEDULE, job)
