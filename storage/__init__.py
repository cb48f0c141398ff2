"""Persistence: SQLAlchemy 2 models, the engine/session factory, Alembic migrations.

Queries live with the rules that need them (`services/`, `digests/compose.py`); there is no
repository layer.
"""
