"""How a client reaches the emulated printer. Each transport feeds the same `PrinterCore`:
`tcp` (raw port 9100), `serial` (a pty whose slave path a client opens as a tty), `usbip` (a USB printer-class
device served over USB/IP)."""
