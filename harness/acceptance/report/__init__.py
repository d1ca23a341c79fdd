"""Acceptance reports: per-scenario records (acceptance.json), pytest-html extras, the stage x fault grid."""
