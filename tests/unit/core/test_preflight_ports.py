"""On a physical bench the emulated devices listen on this machine: the preflight finds a port already taken or
an address that is not here before any scenario starts, one line each."""

import socket

from harness.core.doctor import preflight
from harness.core.rig import parse_rig

RIG = """
name: bench
network: {mode: bench}
devices:
  host: {kind: host, mode: emulated, transport: tcp, address: "ADDRESS"}
"""


def _problems(tmp_path, address):
    path = tmp_path / "bench.yaml"
    return preflight(parse_rig(RIG.replace("ADDRESS", address), path))


def test_a_taken_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        [line] = _problems(tmp_path, f"127.0.0.1:{port}")
    assert line == (f"{tmp_path / 'bench.yaml'}: devices.host.address: found 127.0.0.1:{port}, already in use: "
                    f"stop what listens there (`ss -ltnp 'sport = :{port}'`)")
    assert _problems(tmp_path, f"127.0.0.1:{port}") == []          # free again


def test_an_address_not_on_this_machine_is_one_line(tmp_path):
    [line] = _problems(tmp_path, "192.0.2.1:5000")                  # TEST-NET-1: never a local address
    assert "devices.host.address: found 192.0.2.1:5000, cannot listen there" in line
    assert line.endswith("use an address of this machine")
