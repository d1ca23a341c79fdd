"""The reference till: the till posrig ships to test itself (a separate program, driven like a vendor's till).

    register.py   the till: one sale at a time, basket to receipt, and recovery of what was left open
    app.py        its HTTP control API (docs/till-contract.md) and the program, `python -m harness.reference_till`
    profiles.py   `correct` and the seeded-bug profiles, each a real mistake in the code path where tills make it
    journal.py    the till's durable SQLite journal
    receipt.py    receipt content and printing with python-escpos
    ecr_client.py its ZVT client (ECR side), on the shared codec in harness.protocols.zvt

Its driver, `harness.till.reference.ReferenceTill`, lives with the other till drivers.
"""
