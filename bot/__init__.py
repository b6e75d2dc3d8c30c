"""Shared package of the dental clinic booking backend.

The action server (``actions/``) and the sync service (``sync/``) both use it:
settings, database access, availability and booking rules, tokens, and the
``python -m bot`` command line.
"""

__version__ = "0.1.0"
