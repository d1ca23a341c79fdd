"""Acceptance: the fault matrix, the scenario runner, the oracle and its records, the reports, the shipped suite.

Data flows one way: devices -> records (typed) -> oracle (reconcile) -> ScenarioRecord -> reports.

    matrix.py     the scenarios, generated from the payment stage model
    scenario.py   runs one scenario on a bench: arm faults, sell, settle, quiesce, reconcile
    records.py    reads the ledger, the terminal journal, the printed receipts and the till's sales, typed
    oracle.py     the invariants I1-I6 over those records (registered by name; more plug in)
    expectations.py  what a test expects beyond them, in the matrix's words ("not charged, no sale receipt")
    bench_oracle.py  any test's bench concluded as a scenario: settle, quiesce, reconcile, record
    verdict.py    OK | FAIL | ERROR | INCONCLUSIVE
    report/       acceptance.json, pytest-html extras, the stage x fault grid
    suite/        the pytest suite `posrig run` runs (shipped in the package)
"""
