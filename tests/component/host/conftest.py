"""Host tests with child processes: the host fixtures from tests.support.iso_client."""

from tests.support.iso_client import make_host, srv  # noqa: F401
