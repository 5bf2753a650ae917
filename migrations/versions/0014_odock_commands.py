"""The Odock bridge, outbound: key commands to the store and proof at the gateway (issue 12)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 04:40:00.000000
"""

from collections.abc import Sequence

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
