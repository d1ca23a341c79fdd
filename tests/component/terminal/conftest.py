"""`posrig terminal ...` as processes, against a scripted acquirer on loopback (tests.support)."""

from tests.support.scripted_host import acquirer  # noqa: F401
