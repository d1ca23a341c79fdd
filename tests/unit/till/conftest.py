"""Till tests that need no process: the ZVT client, the journal, the till drivers against in-process peers."""

from tests.support.till_peers import rig_emulated  # noqa: F401
