"""A real labgrid lab on localhost for the labgrid tests: `labgrid-coordinator`, one `labgrid-exporter` exporting
a pty-backed serial port (ser2net, as on a real exporter), two NetworkInterfaces whose NICs live in a network
namespace, and a `NetworkPowerPort` of labgrid's `simplerest` model served by `Relay` (the HTTP a relay board
speaks); a place matching them all. The "physical" receipt printer on the exporter's serial port is posrig's
emulated printer on a pty (`posrig printer serve --serial`).

    with Lab(tmp_path) as lab:          # lab.coordinator "127.0.0.1:PORT", lab.place, lab.relay.log
        ...
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.core.process import posrig_command
from harness.labgrid.power import client_path


def available() -> str:
    """Why the lab cannot run here ("" when it can)."""
    try:
        import labgrid  # noqa: F401
    except ImportError:
        return "labgrid is not installed (pip install 'posrig[labgrid]')"
    if not Path(client_path()).exists() and not shutil.which("labgrid-client"):
        return "labgrid-client is not installed"
    if not (shutil.which("ser2net") or os.path.exists("/usr/sbin/ser2net")):
        return "ser2net is not installed (apt-get install ser2net): labgrid exports serial ports through it"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """A relay board's HTTP API as labgrid's `simplerest` power model drives it: GET /relay/I/V sets relay I to
    V (0/1), GET /relay/I answers its state. Every request is logged with its time."""

    def __init__(self):
        self.state: dict[int, int] = {}
        self.wired: dict[int, object] = {}        # relay index -> callable(on: bool): what the relay feeds
        self.log: list[tuple[float, str, int | None]] = []       # (time, "set"/"get", value)
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                parts = [p for p in self.path.split("/") if p]
                if len(parts) not in (2, 3) or parts[0] != "relay" or not parts[1].isdigit():
                    self.send_error(404)
                    return
                index = int(parts[1])
                if len(parts) == 3 and parts[2] in ("0", "1"):
                    relay.state[index] = int(parts[2])
                    relay.log.append((time.time(), "set", int(parts[2])))
                    if index in relay.wired:
                        relay.wired[index](parts[2] == "1")
                else:
                    relay.log.append((time.time(), "get", None))
                body = str(relay.state.get(index, 1)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="relay", daemon=True)

    def sets(self) -> list[int]:
        return [v for _, what, v in self.log if what == "set"]

    def start(self) -> Relay:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Lab:
    def __init__(self, root: Path, place: str | None = None):
        self.root = Path(root)
        self.port = free_port()
        self.coordinator = f"127.0.0.1:{self.port}"
        self.place = place or f"pos-bench-{os.getpid()}"
        self.exporter_name = f"posrig-lab-{os.getpid()}"
        self.netns = f"posrig-lg-{os.getpid()}"
        self.nics = (f"lg{os.getpid() % 100000}a", f"lg{os.getpid() % 100000}b")
        self.procs: list[subprocess.Popen] = []
        self.relay = Relay()
        self.printer_ready: dict = {}
        self.env = {**os.environ, "LG_COORDINATOR": self.coordinator}

    # -- processes --------------------------------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], cwd: Path | None = None, **kw) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, cwd=cwd or self.root, stdout=kw.pop("stdout", log), stderr=log,
                                start_new_session=True, env=self.env, **kw)
        self.procs.append(proc)
        return proc

    def client(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """labgrid-client -x COORDINATOR ARGS..."""
        done = subprocess.run([client_path(), "-x", self.coordinator, *args], capture_output=True, text=True,
                              timeout=60, env={**self.env, **(env or {})})
        if check and done.returncode != 0:
            raise RuntimeError(f"labgrid-client {' '.join(args)}: {done.stderr.strip()}")
        return done

    def _wait(self, what: str, ok, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if ok():
                    return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{what}: {p.args[:2]} exited {p.returncode}; logs in {self.root}")
            time.sleep(0.2)
        raise RuntimeError(f"{what}: not within {timeout:g}s; logs in {self.root}")

    def start(self) -> Lab:
        self.relay.start()
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "add", self.nics[0], "type", "veth", "peer", "name",
                        self.nics[1]], check=True)
        coord_dir = self.root / "coordinator"
        coord_dir.mkdir(exist_ok=True)
        self._start("coordinator", [client_path().replace("labgrid-client", "labgrid-coordinator"),
                                    "-l", self.coordinator], cwd=coord_dir)
        self._wait("coordinator listening", lambda: socket.create_connection(("127.0.0.1", self.port), 1).close()
                   or True)
        # The physical printer on the exporter's serial port: posrig's emulated printer on a pty.
        out = self.root / "printer.out"
        with open(out, "wb") as sink:
            self._start("printer", [*posrig_command(), "printer", "serve", "--serial", "--tcp", "127.0.0.1:0",
                                    "--journal", str(self.root / "printer-journal")], stdout=sink)
        self._wait("printer ready", lambda: '"ready"' in out.read_text())
        self.printer_ready = json.loads(next(x for x in out.read_text().splitlines() if '"ready"' in x))
        pty = os.path.realpath(self.printer_ready["serial"])
        (self.root / "exporter.yaml").write_text(f"""
bench:
  printer:
    cls: RawSerialPort
    port: {pty}
    speed: 9600
  nic-a:
    cls: NetworkInterface
    ifname: {self.nics[0]}
  nic-b:
    cls: NetworkInterface
    ifname: {self.nics[1]}
  till-power:
    cls: NetworkPowerPort
    model: simplerest
    host: 'http://127.0.0.1:{self.relay.port}/relay/{{index}}/{{value}}'
    index: 0
""")
        self._start("exporter", [client_path().replace("labgrid-client", "labgrid-exporter"), "-c", self.coordinator,
                                 "-n", self.exporter_name, "--hostname", "127.0.0.1", "exporter.yaml"])
        self._wait("exporter's resources at the coordinator",
                   lambda: self.client("resources").stdout.count(f"{self.exporter_name}/bench/") >= 4)
        self.client("-p", self.place, "create")
        self.client("-p", self.place, "add-match", f"{self.exporter_name}/bench/*")
        return self

    def add_place(self, place: str, exporter: str, config: str) -> None:
        """One more exporter (its resource config as YAML text) and a place matching all it exports."""
        (self.root / f"{exporter}.yaml").write_text(config)
        self._start(exporter, [client_path().replace("labgrid-client", "labgrid-exporter"), "-c", self.coordinator,
                               "-n", exporter, "--hostname", "127.0.0.1", f"{exporter}.yaml"])
        groups = sum(1 for line in config.splitlines() if line.startswith("    cls:"))
        self._wait(f"exporter {exporter}'s resources at the coordinator",
                   lambda: self.client("resources").stdout.count(f"{exporter}/") >= groups)
        self.client("-p", place, "create")
        self.client("-p", place, "add-match", f"{exporter}/*/*")

    def ser2net_pids(self) -> list[int]:
        if not self.printer_ready:
            return []
        out = subprocess.run(["pgrep", "-f", f"ser2net.*{os.path.realpath(self.printer_ready['serial'])},"],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def close(self) -> None:
        for p in reversed(self.procs):           # exporter first (it stops its ser2net), then printer, coordinator
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        try:
            for pid in self.ser2net_pids():          # a ser2net the exporter could not stop
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            self.relay.close()

    def __enter__(self) -> Lab:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def python() -> str:
    return sys.executable
