"""A physical bench, simulated: namespaces are the boxes, veths the bench PC's NICs, posrig's emulators the devices.

    [till box] eth0 ─── nic-till ┐                         ┌ nic-term ─── eth0 [terminal box] uplink ─── nic-up ┐
      (reference till,          br-tt (till-terminal,     │  (posrig terminal serve, card slot)              br-th
       operator FIFOs)          session bridge) ──────────┘                                                  │
      prn0 ─── nic-tap (10.18.4.1: posrig's printer tap)                     acq0 (10.18.2.1: posrig's host) ─ nic-acq ┘
    [printer box] eth0 ─── nic-prn (10.18.3.1)          all nic-*, br-*, acq0 in the bench PC namespace "pc"

`posrig run` runs inside "pc" as it would on the bench PC; the person at the till is `ScriptedPerson`, reading
posrig's prompts from the operator FIFOs, ringing the sale up on the reference till's control port, presenting
the named test card in the terminal's card slot and typing what the till showed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.core.process import Child
from harness.topology import Namespace
from harness.topology.namespace import new_namespace, run

TILL_IP, TERMINAL_IP, UPLINK_IP, HOST_IP = "10.18.1.2", "10.18.1.3", "10.18.2.2", "10.18.2.1"
PRINTER_IP, PC_PRINTER_IP, TAP_IP, TILL_PRN_IP = "10.18.3.2", "10.18.3.1", "10.18.4.1", "10.18.4.2"
CONTROL = ("127.0.0.1", 8088)         # the reference till's control port, inside the till box
ANSWER = {"paid": "p", "declined": "d", "cancelled": "c", "failed": "f"}

RIG = """\
name: sim-bench
description: A physical bench simulated with namespaces (tests/support/sim_bench.py).
timing: {{scale: {scale}}}
network: {{mode: bench}}
devices:
  printer:
    kind: printer
    mode: real
    transport: tcp
    address: {printer_ip}:9100
    nic: nic-prn
    options: {{tap: "{tap_ip}:9100"}}
  terminal:
    kind: terminal
    mode: real
    transport: tcp
    address: {terminal_ip}:20007
  host:
    kind: host
    mode: emulated
    transport: tcp
    address: {host_ip}:5000
    nic: acq0
  till:
    kind: till
    mode: real
    driver: operator
    transport: operator
    capabilities: [{capabilities}]
    options: {{input: "{answers}", output: "{prompts}", answer_timeout: 60}}
links:
  till-terminal:
    ends: [till, terminal]
    faultable: true
    driver: bench
    interfaces: [nic-till, nic-term]
    bridge: br-tt
    ports: {{zvt: 20007}}
  terminal-host:
    ends: [terminal, host]
    faultable: true
    driver: bench
    interfaces: [nic-up, nic-acq]
    bridge: br-th
    ports: {{iso8583: 5000}}
"""


class SimBench:
    """The boxes, their cabling and the devices in them; `close()` removes all of it."""

    def __init__(self, folder: Path, profile: str = "correct", scale: float = 0.05, capabilities: str = "abort"):
        self.folder = folder
        self.capabilities = capabilities
        self.scale = scale
        self.profile = profile
        self.label = f"posrig-{os.getpid()}-pb"
        self.boxes: dict[str, Namespace] = {}
        self.children: list[Child] = []
        self.card_slot = folder / "card-slot"
        self.rig_path = folder / "bench.yaml"

    # -- the boxes and their cables -------------------------------------------------------------------------
    def build(self) -> SimBench:
        for box in ("pc", "till", "term", "prn"):
            self.boxes[box] = new_namespace(box, f"{self.label}-{box}", True)
        pc = self.boxes["pc"].label
        cables = [("till", "eth0", "nic-till"), ("term", "eth0", "nic-term"), ("term", "uplink", "nic-up"),
                  ("till", "prn0", "nic-tap"), ("prn", "eth0", "nic-prn")]
        for box, inside, nic in cables:
            run(["ip", "link", "add", inside, "netns", self.boxes[box].label, "type", "veth", "peer", "name", nic,
                 "netns", pc])
        run(["ip", "-n", pc, "link", "add", "nic-acq", "type", "veth", "peer", "name", "acq0"])
        addresses = {"till": [("eth0", TILL_IP), ("prn0", TILL_PRN_IP)],
                     "term": [("eth0", TERMINAL_IP), ("uplink", UPLINK_IP)],
                     "prn": [("eth0", PRINTER_IP)],
                     "pc": [("acq0", HOST_IP), ("nic-tap", TAP_IP), ("nic-prn", PC_PRINTER_IP)]}
        for box, pairs in addresses.items():
            batch = "link set lo up\n" + "".join(f"addr add {ip}/24 dev {dev}\nlink set {dev} up\n"
                                                 for dev, ip in pairs)
            self.boxes[box].run(["ip", "-batch", "-"], input=batch)
        for nic in ("nic-till", "nic-term", "nic-up", "nic-acq"):
            self.boxes["pc"].run(["ip", "link", "set", nic, "up"])
        self.boxes["till"].run(["ethtool", "-K", "eth0", "tx", "off"], check=False)
        return self

    def write_rig(self) -> Path:
        self.rig_path.write_text(RIG.format(scale=self.scale, capabilities=self.capabilities, printer_ip=PRINTER_IP,
                                            tap_ip=TAP_IP, terminal_ip=TERMINAL_IP, host_ip=HOST_IP,
                                            answers=self.folder / "answers", prompts=self.folder / "prompts"))
        return self.rig_path

    def posrig(self, *args: str, timeout: float = 600) -> Any:
        """`posrig ARGS` run on the bench PC (in "pc"); the CompletedProcess."""
        import subprocess

        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        return subprocess.run(self.boxes["pc"].command([sys.executable, "-m", "harness.cli", *args]),
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=self.folder)

    # -- the devices --------------------------------------------------------------------------------------------
    def start_devices(self) -> None:
        py = sys.executable
        s = str(self.scale)
        self._start("printer", "prn", [py, "-m", "harness.cli", "printer", "serve", "--tcp", f"{PRINTER_IP}:9100",
                                       "--control", "127.0.0.1:0"])
        self._start("terminal", "term", [py, "-m", "harness.cli", "terminal", "serve", "--ecr",
                                         f"{TERMINAL_IP}:20007", "--host", f"{HOST_IP}:5000", "--scale", s,
                                         "--no-auto-present", "--card-slot", str(self.card_slot),
                                         "--journal", str(self.folder / "terminal-journal.sqlite")])
        self._start("till", "till", [py, "-m", "harness.reference_till", "serve", "--ecr", f"{TERMINAL_IP}:20007",
                                     "--printer", f"{TAP_IP}:9100", "--profile", self.profile,
                                     "--control", f"{CONTROL[0]}:{CONTROL[1]}",
                                     "--journal", str(self.folder / "till-journal.sqlite"), "--timing-scale", s])

    def _start(self, name: str, box: str, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        child = Child(f"{name} box", argv, namespace=self.boxes[box], log=self.folder / f"{name}.log", env=env)
        child.start(30.0, max_wait=90.0)
        self.children.append(child)

    def close(self) -> None:
        for child in self.children[::-1]:
            with contextlib.suppress(Exception):
                child.stop(timeout=3.0)
        for ns in self.boxes.values():
            with contextlib.suppress(Exception):
                run(["ip", "netns", "del", ns.label])
            with contextlib.suppress(Exception):
                ns.holder.kill()
                ns.holder.wait(2)


class ScriptedPerson(threading.Thread):
    """The person at the till: reads posrig's prompts, acts on the till and the terminal, types the answers."""

    def __init__(self, bench: SimBench):
        super().__init__(name="scripted-person", daemon=True)
        self.bench = bench
        self.seen: list[str] = []
        self.sales: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        prompts, answers = self.bench.folder / "prompts", self.bench.folder / "answers"
        while not (prompts.exists() and answers.exists()):             # posrig makes the FIFOs
            if self.stopping.wait(0.05):
                return
        out = os.open(answers, os.O_WRONLY)                            # the answer side first, on purpose
        screen = os.open(prompts, os.O_RDONLY | os.O_NONBLOCK)
        buf, sale = b"", None
        try:
            while not self.stopping.is_set():
                if not select.select([screen], [], [], 0.1)[0]:
                    continue
                chunk = os.read(screen, 4096)
                if not chunk:
                    time.sleep(0.05)
                    continue
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.decode()
                    self.seen.append(line)
                    sale = self._act(line, sale, out)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(exc))
        finally:
            os.close(out)
            os.close(screen)

    def _act(self, line: str, sale: dict[str, Any] | None, out: int) -> dict[str, Any] | None:
        if re.match(r"posrig: sale \S+: ring up", line):
            return {"basket": [], "card": "approve"}
        if sale is not None and (m := re.match(r"\s+(\d+) x (.+?)  (\d+\.\d\d)$", line)):
            qty = int(m.group(1))
            sale["basket"].append({"sku": m.group(2), "name": m.group(2), "qty": qty,
                                   "price": f"{float(m.group(3)) / qty:.2f}"})
        elif sale is not None and (m := re.search(r"present the (\S+) test card", line)):
            sale["card"] = m.group(1).lower()
        elif line.startswith("When the till has finished") and sale is not None:
            with open(self.bench.card_slot, "w") as slot:                # the card, when the terminal asks
                slot.write(sale["card"] + "\n")
            threading.Thread(target=self._sell_and_answer, args=(sale["basket"], out), daemon=True).start()
            return None
        elif line.startswith("posrig: press ABORT on the till"):
            threading.Thread(target=self._post, args=("/abort", {}), daemon=True).start()
        elif line.rstrip().endswith("[o=ok, done]"):
            os.write(out, b"o\n")
        elif line.startswith("Did a sale receipt"):
            os.write(out, b"n\n")
        return sale

    def _sell_and_answer(self, basket: list[dict[str, Any]], out: int) -> None:
        """Ring the basket up on the till and take the card payment (while still reading posrig's prompts: the
        cashier may be told to press abort), then type what the till showed."""
        try:
            result = self._post("/sale", {"basket": basket, "tender": "card"})
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(exc))
            result = {}
        self.sales.append(result)
        os.write(out, (ANSWER.get(str(result.get("status")), "u") + "\n").encode())

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the till's control port, inside the till box (the person's hands on the till)."""
        sock = self.bench.boxes["till"].connect(CONTROL, timeout=120)
        conn = http.client.HTTPConnection(*CONTROL, timeout=120)
        conn.sock = sock
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            return json.loads(conn.getresponse().read() or b"{}")
        finally:
            conn.close()
