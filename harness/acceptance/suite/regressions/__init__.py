"""Regression rows of the matrix: scenario files (`*.yaml`) found by `posrig explore`, copied here, run by
test_matrix.py after the generated scenarios (ids `regression/<file stem>/<outcome>`). See docs/explore.md."""
