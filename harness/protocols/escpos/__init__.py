"""ESC/POS: command bytes (`commands`), the incremental decoder (`decoder`), its events (`events`) and
receipts assembled from them (`receipt`)."""

from harness.protocols.escpos.decoder import Decoder, decode
from harness.protocols.escpos.receipt import Receipt, ReceiptBuilder

__all__ = ["Decoder", "Receipt", "ReceiptBuilder", "decode"]
