"""The `command` till driver: a till driven by shell commands, one per action, each printing JSON on stdout.

    devices:
      till:
        kind: till
        mode: real
        driver: command
        transport: command
        address: "vendor-till-cli"              # the default prefix of every action
        options:
          sell: "vendor-till-cli sell --basket {basket_file} --tender {tender}"
          journal: "vendor-till-cli journal"    # optional
          recover: "vendor-till-cli recover"    # optional
          health: "vendor-till-cli health"      # optional, run at start
          timeout: 300

Placeholders: {basket} (the basket as JSON, shell-quoted), {basket_file} (a JSON file holding {"basket",
"tender"}), {tender}, {amount_cents}. Without an explicit `sell` option the command is `<address> sell` with
the request JSON on stdin. `sell` must print one sale outcome object (docs/till-contract.md); `journal` a
{"sales": [...]} object.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harness.core.process import die_with_parent
from harness.till import Till
from harness.till.outcome import ContractError, SaleOutcome, basket_total


class CommandTill(Till):
    """Runs the rig's commands (inside the till's namespace when there is one)."""

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.options = dict(spec.options or {})
        self.runs: list[dict[str, Any]] = []

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout", 300.0))

    def _template(self, action: str) -> str | None:
        if action in self.options:
            return str(self.options[action])
        if action == "sell" and self.spec.address:
            return f"{self.spec.address} {action}"
        return None

    def run(self, action: str, request: dict[str, Any] | None = None, **fields: Any) -> Any:
        """Run the command for `action`; its stdout parsed as JSON. ContractError names the command on
        failure."""
        template = self._template(action)
        if template is None:
            raise ContractError(f"till {self.name!r}: no command for {action!r}; "
                                f"set options.{action} or address")
        request = request or {}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(request, fh)
            request_file = fh.name
        try:
            values = {"basket_file": shlex.quote(request_file),
                      "basket": shlex.quote(json.dumps(request.get("basket", []))),
                      **{k: shlex.quote(str(v)) for k, v in fields.items()}}
            try:
                command = template.format(**values)
            except KeyError as exc:
                raise ContractError(f"till {self.name!r}: command {template!r} uses unknown placeholder "
                                    f"{exc}; "
                                    f"known: {', '.join(values)}") from None
            argv = ["sh", "-c", command]
            if self.ctx.namespace is not None:
                argv = self.ctx.namespace.command(argv)
            try:
                proc = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True,
                                      timeout=self.timeout, preexec_fn=die_with_parent)
            except subprocess.TimeoutExpired:
                raise ContractError(f"till command {command!r} did not finish within "
                                    f"{self.timeout:.0f}s") from None
        finally:
            Path(request_file).unlink(missing_ok=True)
        self.runs.append({"action": action, "command": command, "returncode": proc.returncode,
                          "stderr": proc.stderr[-2000:]})
        if proc.returncode != 0:
            raise ContractError(f"till command {command!r} exited {proc.returncode}: "
                                f"{proc.stderr.strip()[-500:] or proc.stdout.strip()[-500:]}")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise ContractError(f"till command {command!r} must print JSON on stdout, printed: "
                                f"{proc.stdout[:300]!r}") from None

    def start(self) -> None:
        if self._template("sell") is None:
            raise ContractError(f"till {self.name!r}: the command driver needs `address` (a command prefix) "
                                "or `options.sell`")
        if "health" in self.options:
            self.run("health")

    def close(self) -> None:
        if self.runs:
            self.ctx.evidence.write_json("till-commands.json", self.runs, "commands run on the till")
            self.runs = []

    def sell(self, basket: list[dict[str, Any]], tender: str = "card") -> SaleOutcome:
        amount = basket_total(basket)
        answer = self.run("sell", {"basket": basket, "tender": tender}, tender=tender, amount_cents=amount)
        return SaleOutcome.from_dict(answer, source=f"till command {self._template('sell')!r}")

    def journal(self) -> list[dict[str, Any]]:
        if "journal" not in self.options:
            return []
        answer = self.run("journal")
        if not isinstance(answer, dict) or not isinstance(answer.get("sales"), list):
            raise ContractError("till journal command must print {\"sales\": [...]}, "
                                f"printed {answer!r:.200}")
        return answer["sales"]

    def recover(self) -> list[SaleOutcome]:
        if "recover" not in self.options:
            return []
        answer = self.run("recover")
        sales = (answer or {}).get("sales", [])
        return [SaleOutcome.from_dict(s, source="till recover command") for s in sales]
