"""The notes app: one model, JSON views."""
