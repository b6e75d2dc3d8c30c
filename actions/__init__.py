"""Custom actions of the clinic assistant (rasa-sdk), one module per feature.

``python -m actions`` starts the action server (see actions/server.py). The modules:
booking (the booking form), availability (free times without booking), manage
(list / move / cancel), session (who the caller is), recall (the due reminder after a greeting),
waitlist (joining it, and the offers the sync service sends into the chat),
emergency, handoff (people,
stopping, digressions), and the pure helpers dates and formatting. Every read and
write goes through actions.gateway.
"""
