"""Terminal tests: a scripted acquirer and emulated terminals on loopback (tests.support), timers x0.05."""

from tests.support.ecr_client import ecr, make_terminal, terminal  # noqa: F401
from tests.support.scripted_host import acquirer, dead_host  # noqa: F401
