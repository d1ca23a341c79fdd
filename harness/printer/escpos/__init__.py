"""ESC/POS: command bytes (`commands`), the incremental decoder (`decoder`), its events (`events`) and receipts
assembled from them (`receipt`)."""

from harness.printer.escpos.decoder import Decoder, decode
from harness.printer.escpos.receipt import Receipt, ReceiptBuilder

__all__ = ["Decoder", "Receipt", "ReceiptBuilder", "decode"]
