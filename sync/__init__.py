"""The realtime sync service: outbox rows in PostgreSQL → Socket.IO clients, by role.

Start it with ``python -m sync``; the protocol is described in ``docs/realtime.md``.
"""
