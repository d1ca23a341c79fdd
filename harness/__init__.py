"""posrig: a hardware-in-the-loop test harness for point-of-sale tills."""

from harness.core import escpos_cache as _escpos_cache

__version__ = "0.1.0"

_escpos_cache.install()      # before anything imports python-escpos: no temporary folder per process
