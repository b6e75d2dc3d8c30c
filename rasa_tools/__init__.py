"""Tools for the Rasa project: training fingerprint and NLU scoring (run with .venv-rasa)."""
