"""posrig: a hardware-in-the-loop test harness for point-of-sale tills."""

__version__ = "0.1.0"
