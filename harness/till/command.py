"""The `command` till driver: a till driven from its command line, either one process per action or one
persistent helper that takes JSON lines (fast: no process per action).

    devices:
      till:
        kind: till
        mode: real
        driver: command
        transport: command
        address: "vendor-till-cli"              # the default prefix of every one-shot action
        options:
          serve: "vendor-till-cli --stdio"      # a persistent helper (JSON lines); replaces the lines below
          sell: "vendor-till-cli sell --basket {basket_file} --tender {tender}"
          abort: "vendor-till-cli abort"        # run while `sell` runs
          journal: "vendor-till-cli journal"    # optional
          recover: "vendor-till-cli recover"    # optional
          health: "vendor-till-cli health"      # optional, run at start
          timeout: 300

Commands never go through a shell: a template is split into arguments once, then each placeholder is filled
inside its own argument (harness.till.argv), so a basket cannot inject anything; a quoted placeholder is refused.
Placeholders: {basket} (the basket as JSON), {basket_file} (a JSON file holding {"basket", "tender"}),
{tender}, {amount_cents}, and the device endpoints ({terminal}, {printer}, ...; also in the environment as
POSRIG_TERMINAL, ...). The request JSON is also on stdin. `sell` prints one sale outcome object
(docs/till-contract.md); `journal` and `recover` a {"sales": [...]} object.

The helper (`serve`) prints a ready line {"event": "ready", "capabilities": [...]}, then answers each request
line {"id": 7, "action": "sell", "request": {...}} with {"id": 7, "result": {...}} or {"id": 7, "error": "..."};
requests may overlap (an abort arrives while a sale runs).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.core.process import die_with_parent, spawn
from harness.till import Till, TillCannot
from harness.till import argv as argvs
from harness.till import endpoints as ep
from harness.till.lifecycle import Launched, TillStartError
from harness.till.outcome import ContractError, SaleOutcome, basket_total

ACTIONS = ("sell", "abort", "journal", "recover", "health")
REQUEST_PLACEHOLDERS = ("basket", "basket_file", "tender", "amount_cents")


def check_options(options: dict[str, Any]) -> None:
    """Refuse command templates that could not run safely (at rig load and at start). TemplateError."""
    known = [*ep.ENDPOINTS, *REQUEST_PLACEHOLDERS]
    for key in (*ACTIONS, "serve", "launch", "stop", "kill"):
        if options.get(key):
            argvs.check(str(options[key]), known=known)


class Helper:
    """The persistent helper process: JSON-line requests in, JSON-line answers out, matched by id."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], namespace: Any, evidence: Any,
                 ready_timeout: float):
        self.name, self.argv, self.env, self.namespace = name, argv, env, namespace
        self.evidence, self.ready_timeout = evidence, ready_timeout
        self.proc: subprocess.Popen | None = None
        self.ready: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                                  "env": {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                                  "start_new_session": True}
        self._ready.clear()
        try:
            self.proc = (self.namespace.popen(self.argv, **kwargs) if self.namespace is not None
                         else spawn(self.argv, **kwargs))
        except OSError as exc:
            raise TillStartError(f"till {self.name!r}: cannot start helper {' '.join(self.argv)}: {exc}") from exc
        log = self.evidence.file("till-helper-stderr.log", "the till helper's stderr", "text/plain")
        self._threads = [threading.Thread(target=self._read, args=(self.proc,), daemon=True),
                         threading.Thread(target=self._stderr, args=(self.proc, log), daemon=True)]
        for t in self._threads:
            t.start()
        if not self._ready.wait(self.ready_timeout):
            self.stop()
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise TillStartError(f"till helper {' '.join(self.argv)} printed no ready line "
                                 f"{{\"event\": \"ready\"}} within {self.ready_timeout:g}s; stderr: {tail}")
        return self.ready

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            if not self._ready.is_set() and msg.get("event") == "ready":
                self.ready = msg
                self._ready.set()
                continue
            with self._lock:
                waiter = self._waiting.pop(msg.get("id"), None)
            if waiter is not None:
                waiter[1].append(msg)
                waiter[0].set()
        with self._lock:                                   # the helper is gone: wake everyone waiting
            waiting, self._waiting = self._waiting, {}
        for event, box in waiting.values():
            box.append({"error": f"the till helper exited ({proc.poll()})", "gone": True})
            event.set()

    @staticmethod
    def _stderr(proc: subprocess.Popen, log: Path) -> None:
        with open(log, "ab") as sink:
            for raw in iter(proc.stderr.readline, b""):
                sink.write(raw)
                sink.flush()

    def call(self, action: str, request: dict[str, Any], timeout: float) -> Any:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            raise ContractError(f"till helper {' '.join(self.argv)} is not running")
        rid = next(self._ids)
        event, box = threading.Event(), []
        with self._lock:
            self._waiting[rid] = (event, box)
        try:
            proc.stdin.write((json.dumps({"id": rid, "action": action, "request": request}) + "\n").encode())
            proc.stdin.flush()
        except (OSError, ValueError) as exc:
            with self._lock:
                self._waiting.pop(rid, None)
            raise ContractError(f"till helper {' '.join(self.argv)}: cannot send {action}: {exc}") from None
        if not event.wait(timeout):
            with self._lock:
                self._waiting.pop(rid, None)
            raise ContractError(f"till helper {' '.join(self.argv)} did not answer {action} within {timeout:g}s")
        answer = box[0]
        if "error" in answer:
            raise ContractError(f"till helper {' '.join(self.argv)}: {action} failed: {answer['error']}")
        return answer.get("result")

    def _group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()                       # end of requests: a well-behaved helper exits
        try:
            proc.wait(timeout=timeout / 2)
        except subprocess.TimeoutExpired:
            self._group(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout / 2)
            except subprocess.TimeoutExpired:
                pass
        self._group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        for t in self._threads:
            t.join(2.0)
        self.proc = None

    def kill(self) -> None:
        self._group(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        for t in self._threads:
            t.join(2.0)
        self.proc = None


class CommandTill(Launched, Till):
    """Runs the rig's commands (inside the till's namespace when there is one)."""

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.options = dict(spec.options or {})
        self.runs: list[dict[str, Any]] = []
        self.helper: Helper | None = None
        self._values: dict[str, str] = {}

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout", 300.0))

    def declared_capabilities(self) -> list[str] | None:
        if self.helper is not None and isinstance(self.helper.ready.get("capabilities"), list):
            return self.helper.ready["capabilities"]
        if self.helper is not None:
            return ["abort", "recover", "journal", "lifecycle"]
        return [c for c in ("abort", "recover", "journal") if c in self.options]

    def capabilities(self) -> frozenset[str]:
        caps = super().capabilities()
        return caps | {"lifecycle"} if self.helper is not None and "capabilities" not in self.options else caps

    def _template(self, action: str) -> str | None:
        if action in self.options:
            return str(self.options[action])
        if action == "sell" and self.spec.address:
            return f"{self.spec.address} {action}"
        return None

    def run(self, action: str, request: dict[str, Any] | None = None, **fields: Any) -> Any:
        """The answer to `action`, parsed JSON: from the helper, else from a one-shot command. ContractError
        names the command on failure."""
        request = request or {}
        if self.helper is not None:
            t0 = time.monotonic()
            try:
                return self.helper.call(action, request, self.timeout)
            finally:
                self.runs.append({"action": action, "helper": True, "elapsed": round(time.monotonic() - t0, 4)})
        template = self._template(action)
        if template is None:
            raise ContractError(f"till {self.name!r}: no command for {action!r}; "
                                f"set options.{action}, options.serve or address")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(request, fh)
            request_file = fh.name
        try:
            values = {**self._values, "basket_file": request_file, "basket": json.dumps(request.get("basket", [])),
                      **{k: str(v) for k, v in fields.items()}}
            try:
                argv = argvs.render(template, values)
            except argvs.TemplateError as exc:
                raise ContractError(str(exc)) from None
            wrapped = self.ctx.namespace.command(argv) if self.ctx.namespace is not None else argv
            try:
                proc = subprocess.run(wrapped, input=json.dumps(request), capture_output=True, text=True,
                                      timeout=self.timeout, preexec_fn=die_with_parent,
                                      env={**os.environ, **ep.env(self._values)})
            except subprocess.TimeoutExpired:
                raise ContractError(f"till command {argv!r} did not finish within {self.timeout:.0f}s") from None
            except OSError as exc:
                raise ContractError(f"till command {argv!r} cannot run: {exc}") from None
        finally:
            Path(request_file).unlink(missing_ok=True)
        self.runs.append({"action": action, "argv": argv, "returncode": proc.returncode,
                          "stderr": proc.stderr[-2000:]})
        if proc.returncode != 0:
            raise ContractError(f"till command {argv!r} exited {proc.returncode}: "
                                f"{proc.stderr.strip()[-500:] or proc.stdout.strip()[-500:]}")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise ContractError(f"till command {argv!r} must print JSON on stdout, printed: "
                                f"{proc.stdout[:300]!r}") from None

    def start(self) -> None:
        try:
            check_options(self.options)
        except argvs.TemplateError as exc:
            raise ContractError(f"till {self.name!r}: {exc}") from None
        if not self.options.get("serve") and self._template("sell") is None:
            raise ContractError(f"till {self.name!r}: the command driver needs `address` (a command prefix), "
                                "`options.sell` or `options.serve`")
        self._values = self.endpoint_values()
        self._launch(self._values)
        self._start_helper()
        if "health" in self.options or self.helper is not None:
            self.run("health")

    def _start_helper(self) -> None:
        if not self.options.get("serve"):
            return
        argv = argvs.render(str(self.options["serve"]), self._values)
        self.helper = Helper(self.name, argv, ep.env(self._values), self.ctx.namespace, self.ctx.evidence,
                             float(self.options.get("ready_timeout", 30.0)))
        self.helper.start()

    def close(self) -> None:
        try:
            if self.helper is not None:
                self.helper.stop()
            self._stop_launched()
        finally:
            if self.runs:
                self.ctx.evidence.write_json("till-commands.json", self.runs, "commands run on the till")
                self.runs = []

    def kill(self) -> None:
        if self.launcher is None and self.helper is None:
            raise TillCannot("lifecycle", f"till {self.name!r} has no lifecycle: set `launch` or `serve`")
        if self.launcher is not None:
            self.launcher.kill()
        if self.helper is not None:
            self.helper.kill()

    def restart(self) -> None:
        if self.launcher is None and self.helper is None:
            raise TillCannot("lifecycle", f"till {self.name!r} has no lifecycle: set `launch` or `serve`")
        if self.launcher is not None:
            self.launcher.stop()
            self.launcher.start()
        if self.helper is not None:
            self.helper.stop()
            self.helper.start()

    def sell(self, basket: list[dict[str, Any]], tender: str = "card") -> SaleOutcome:
        amount = basket_total(basket)
        answer = self.run("sell", {"basket": basket, "tender": tender}, tender=tender, amount_cents=amount)
        return SaleOutcome.from_dict(answer, source=f"till {self.name!r} sell")

    def abort(self) -> None:
        if self.helper is None and "abort" not in self.options:
            raise TillCannot("abort", f"till {self.name!r} cannot abort: set options.abort or options.serve")
        self.run("abort")

    def journal(self) -> list[dict[str, Any]]:
        if self.helper is None and "journal" not in self.options:
            return []
        answer = self.run("journal")
        if not isinstance(answer, dict) or not isinstance(answer.get("sales"), list):
            raise ContractError("till journal command must print {\"sales\": [...]}, "
                                f"printed {answer!r:.200}")
        return answer["sales"]

    def recover(self) -> list[SaleOutcome]:
        if self.helper is None and "recover" not in self.options:
            return []
        answer = self.run("recover")
        sales = (answer or {}).get("sales", [])
        return [SaleOutcome.from_dict(s, source="till recover command") for s in sales]
