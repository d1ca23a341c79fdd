"""Acceptance reports: per-scenario records and acceptance.json (`record.py`), pytest-html extras and the
stage x fault grid (`html.py`)."""
