"""Alembic's environment for the decision log: runs on the connection `ticket_router.decision_log.store` hands over
(config.attributes["connection"]); there is no alembic.ini."""

from alembic import context

from ticket_router.decision_log.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
