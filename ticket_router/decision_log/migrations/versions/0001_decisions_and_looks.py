"""The decision log's first schema: decisions, the versions that made them, and looks.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "versions",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(40), nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "looks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model_version", sa.String(200)),
        sa.Column("model_fingerprint", sa.String(64)),
        sa.Column("tickets", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("model_fingerprint", sa.String(64), nullable=False),
        sa.Column("predicted", sa.String(300), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("routing_score", sa.Float, nullable=False),
        sa.Column("rule_route", sa.String(10), nullable=False),
        sa.Column("route", sa.String(10), nullable=False),
        sa.Column("audit", sa.Boolean, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Column("prediction_set", sa.Text),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("final_queue", sa.String(300)),
        sa.Column("closing_queue", sa.String(300)),
        sa.Column("final_at", sa.DateTime(timezone=True)),
        sa.Column("final_source", sa.String(20)),
        sa.Column("look_id", sa.Integer, sa.ForeignKey("looks.id")),
    )
    op.create_index("ix_decisions_ticket_id", "decisions", ["ticket_id"])
    op.create_index("ix_decisions_fingerprint", "decisions", ["model_fingerprint"])
    op.create_index("ix_decisions_text_sha256", "decisions", ["text_sha256"])


def downgrade() -> None:
    op.drop_table("decisions")
    op.drop_table("looks")
    op.drop_table("versions")
