"""Every wire protocol, declared once: the devices, the reference till and the link all import from here.

    iso8583.py    ISO 8583 (terminal <-> acquirer): pyiso8583 specs, length framing, field masking
    zvt           ZVT (till <-> terminal): APDUs, BMPs, commands, result codes, RS-232 framing
    escpos/       ESC/POS (till -> printer): command bytes, the incremental decoder, receipts
    stages.py     the stage grammar: how a message type on a link is named ("0210", "zvt:04 0F", "connect")
"""
