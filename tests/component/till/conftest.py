"""The reference till as a real subprocess, wired to the test peers on loopback (tests.support.till_peers)."""

from tests.support.till_peers import make_till, rig_emulated  # noqa: F401
