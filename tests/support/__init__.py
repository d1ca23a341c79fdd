"""Support code shared by the project's tests: independent protocol peers and the fixtures built on them.

Import from here (`from tests.support.iso_client import Client`), never from a conftest. The peers are written
from the protocol specifications, not from posrig's own codecs, so every emulator is checked against a second
implementation of its wire format.

    iso_client.py     ISO 8583 terminal-side client (pyiso8583 + struct); host fixtures make_host, srv, host_bench,
                      serve_host (`posrig host serve` under Child)
    ecr_client.py     ZVT ECR client, hand-framed
    scripted_host.py  a scripted ISO 8583 acquirer for terminal tests
    till_peers.py     a scripted ZVT terminal and a minimal ESC/POS printer for till tests
    link_peers.py     ISO 8583 / ZVT peers inside namespaces for link tests
    vendor_cli.py     a vendor till's command line, for the `command` till driver
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]          # the posrig checkout
RIGS = ROOT / "rigs"

# Options for a user's test run inside this process (`pytester.runpytest_inprocess`: no new interpreter, no
# re-import of posrig, about 1.5 s less than a subprocess each). labgrid's pytest plugin, there when labgrid is
# installed, cannot be configured twice in one process, so the inner run goes without it. Runs that are about
# the process itself (xdist workers, a killed run, `posrig run`) stay subprocesses.
IN_PROCESS = ("-p", "no:labgrid")
