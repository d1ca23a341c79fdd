"""The shipped suite's own option: `--scenario-file FILE` (repeatable) runs those scenario files instead of the
matrix (`posrig run --scenario FILE`; harness/explore/schedule.py reads them)."""


def pytest_addoption(parser):
    parser.getgroup("posrig").addoption(
        "--scenario-file", action="append", default=[], metavar="FILE",
        help="run this scenario file (posrig explore's YAML) instead of the matrix; repeatable")
