"""The acceptance suite shipped with posrig: the main job `posrig run` runs (see harness/cli/run.py).

    test_bench_network.py   every faultable link carries TCP between its ends (before any scenario)
    test_matrix.py          the fault matrix: every stage x fault kind x outcome, reconciled by the oracle
"""
