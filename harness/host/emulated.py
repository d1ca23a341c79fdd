"""`EmulatedHost`: posrig plays the card acquirer (ISO 8583 over TCP) with a durable SQLite ledger.

Public API (stable; the terminal emulator and the oracle use it):

    host.address                   (ip, port) the terminal connects to
    host.ledger                    harness.host.ledger.Ledger: payments(), payment(stan=, terminal=, rrn=),
                                   holds_money(...), settled_payments(), totals(), messages(), batches()
    host.behave(what, **match)     set a behaviour from the test, newest rule first; returns the rule id
                                     what: approve | decline | slow | silent | twice | close, or a Behaviour
                                     code="51", delay_ms=15000 (nominal, x rig timing scale), times=1
                                     match: amount=999 or "9.99", pan=, pan_prefix=, mti="0420",
                                     terminal=, stan=
    host.clear_behaviours()        drop the rules set from tests (magic amounts, test cards, rules file stay)
    host.ledger_path, host.spec_name, host.framing
    host.kill(), host.restart()    process mode: SIGKILL the host process; start it again, same ledger

Rig options (`devices.host.options`): spec (ascii | binary), framing (2byte | 4ascii | none), rules (a
YAML/JSON rules file, relative to the rig file), window (seconds a repeated request is recognised, default
600), process (true: run `posrig host serve` as a child process instead of threads in this process),
synchronous (FULL | NORMAL).

TLS: when the rig's link to the host has `tls:` (`harness.core.rig.LinkTls`), the host serves ISO 8583 over
TLS of that version with a bench CA made for the scenario (`harness.host.tls`; certificates in the evidence as
`tls-bench-ca.pem` and `tls-<host>-cert.pem`; with `keylog: true` its secrets in `tls-keylog.keys`, the
SSLKEYLOGFILE format Wireshark reads) and offers the client side to the emulated terminal. Threads only (not
with `process: true`).

Placement: in the emulated rig the host listens on 0.0.0.0:PORT inside its namespace (`address: host:5000`)
and the terminal reaches it at the host node's IP; without namespaces it listens on 127.0.0.1 on an ephemeral
port; on a physical bench it binds to the address in the rig (the bench NIC the real terminal is configured to
use). Evidence: `host.jsonl` (every message decoded, direction and time, card numbers masked),
`host-ledger.sqlite` (the ledger itself) and, at close, `host-ledger.json` (payments and totals).

Behaviour rules are stored in the ledger file (table `rules`), which the host re-reads before its next request
when another process changed it: the same `behave()` works whether the host runs as threads or as a child
process.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any

from harness.core.address import parse_hostport, port_of
from harness.core.device import DeviceContext
from harness.core.process import Child, ChildFailed, posrig_command
from harness.core.rig import tls_between
from harness.host import AcquirerHost
from harness.host.behaviour import Behaviour, Match, Rule, RuleError, load_rules
from harness.host.ledger import Ledger
from harness.host.server import HostServer
from harness.host.tls import BenchPki, TlsSetupError, offer, withdraw
from harness.protocols.iso8583 import DEFAULT_SPEC, SPECS, Framing

DEFAULT_PORT = 5000
READY_TIMEOUT = 15.0


class HostError(RuntimeError):
    """The emulated host could not start or be controlled; the message says what to change."""


class EmulatedHost(AcquirerHost):
    """The emulated acquirer: threads in this process (default) or a `posrig host serve` child."""

    close_timeout = 8.0

    def __init__(self, spec: Any, ctx: DeviceContext, **bound: Any):
        super().__init__(spec, ctx, **bound)
        opts = dict(spec.options or {})
        unknown = set(opts) - {"spec", "framing", "rules", "window", "process", "synchronous"}
        if unknown:
            raise HostError(
                f"host {spec.name!r}: unknown option(s) {sorted(unknown)}; expected spec, framing, "
                "rules, window, process, synchronous"
            )
        self.spec_name: str = opts.get("spec", DEFAULT_SPEC)
        if self.spec_name not in SPECS:
            raise HostError(
                f"host {spec.name!r}: options.spec {self.spec_name!r}; expected one of {', '.join(SPECS)}"
            )
        self.framing: str = Framing(opts.get("framing", "2byte")).name
        self.rules_file: str | None = self._rig_relative(opts.get("rules"))
        self.window = float(opts.get("window", 600.0))
        self.process_mode = bool(opts.get("process", False))
        self.synchronous = str(opts.get("synchronous", "FULL")).upper()
        self.ledger_path: Path = ctx.evidence.file(
            "host-ledger.sqlite", "acquirer host ledger (SQLite)", "application/vnd.sqlite3"
        )
        self._server: HostServer | None = None
        self._child: Child | None = None
        self._transcript = None
        self._ledger: Ledger | None = None
        self._bind: tuple[str, int] | None = None
        self._address: tuple[str, int] | None = None
        self._closed = False
        self.tls = tls_between(ctx.rig, spec.name)
        self._pki: BenchPki | None = None
        if self.tls is not None and self.process_mode:
            raise HostError(f"host {spec.name!r}: TLS on its link (tls:) is served by the host's threads only; "
                            "remove `process: true` or the link's `tls:`")

    def _rig_relative(self, path: str | None) -> str | None:
        """A rules file named in the rig is found relative to the rig file (absolute paths stay)."""
        if not path:
            return None
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = Path(self.ctx.rig.path).parent / p
        return str(p)

    # -- placement -------------------------------------------------------------------------------
    def _configured_port(self) -> int:
        return port_of(self.spec.address, DEFAULT_PORT)

    def _placement(self) -> tuple[tuple[str, int], str]:
        """(bind address, advertised ip)."""
        ns = self.ctx.namespace
        if ns is not None:
            return ("0.0.0.0", self._configured_port()), str(ns.ip or "0.0.0.0")
        if self.ctx.rig.network_mode == "bench":
            if not self.spec.address:
                raise HostError(
                    f"host {self.name!r}: a bench rig needs `address: IP:PORT` (the bench NIC the "
                    "terminal is configured to use)"
                )
            ip, port = parse_hostport(self.spec.address, what=f"host {self.name!r} address")
            return (ip, port), ip
        return ("127.0.0.1", 0), "127.0.0.1"

    def _listen(self, bind: tuple[str, int]) -> socket.socket:
        try:
            if self.ctx.namespace is not None:
                return self.ctx.namespace.listen(bind, backlog=64)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(bind)
            s.listen(64)
            return s
        except OSError as exc:
            raise HostError(
                f"host {self.name!r}: cannot listen on {bind[0]}:{bind[1]}: {exc.strerror}; "
                "is another host running there, or is the address not on this machine?"
            ) from None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        rules = self._file_rules()  # fail early on a bad rules file, in both modes
        (bind, ip) = self._placement()
        if self.process_mode:
            self._bind = bind
            port = self._spawn(bind)
        else:
            listener = self._listen(bind)
            tls_context = self._tls_server(ip) if self.tls is not None else None
            self._transcript = self.ctx.evidence.transcript("host")
            self._server = HostServer(
                listener,
                self.ledger_path,
                spec=self.spec_name,
                framing=self.framing,
                rules=rules,
                window=self.window,
                timing_scale=self.ctx.timing.scale,
                transcript=self._transcript,
                synchronous=self.synchronous,
                tls=tls_context,
            )
            self._server.start()
            port = self._server.address[1]
        self._address = (ip, port)
        if self._pki is not None:
            offer(self._address, self._pki.client_context(self.tls.version), tls_context)
        self._ledger = Ledger(self.ledger_path)

    def _tls_server(self, ip: str) -> ssl.SSLContext:
        """The bench CA and this host's certificate for `ip` (in the evidence), and the server context."""
        try:
            ev = self.ctx.evidence
            pem = "application/x-pem-file"
            self._pki = BenchPki(self.name, ip, ev.file("tls-bench-ca.pem", "bench CA certificate (TLS link)", pem),
                                 ev.file(f"tls-{self.name}-cert.pem", "host TLS certificate chain", pem))
            context = self._pki.server_context(self.tls.version, tickets=self.tls.tickets[0])
            if self.tls.keylog:             # not a text suffix: the evidence scan looks for known cards only
                context.keylog_filename = str(ev.file("tls-keylog.keys", "TLS secrets (SSLKEYLOGFILE format): "
                                                      "Wireshark decrypts the link capture with it", "text/plain"))
            return context
        except (TlsSetupError, OSError, ssl.SSLError) as exc:
            raise HostError(f"host {self.name!r}: cannot set up TLS for its link: {exc}") from None

    def _file_rules(self) -> list[Rule]:
        if not self.rules_file:
            return []
        try:
            return load_rules(self.rules_file)
        except RuleError as exc:
            raise HostError(f"host {self.name!r}: options.rules: {exc}") from None

    def _command(self, bind: tuple[str, int]) -> list[str]:
        cmd = [
            *posrig_command(),
            "host",
            "serve",
            "--listen",
            f"{bind[0]}:{bind[1]}",
            "--ledger",
            str(self.ledger_path),
            "--spec",
            self.spec_name,
            "--framing",
            self.framing,
            "--window",
            str(self.window),
            "--timing-scale",
            str(self.ctx.timing.scale),
            "--synchronous",
            self.synchronous,
            "--transcript",
            str(self.ctx.evidence.file("host.jsonl", "host transcript", "application/x-ndjson")),
        ]
        if self.rules_file:
            cmd += ["--rules", str(self.rules_file)]
        return cmd

    def _spawn(self, bind: tuple[str, int]) -> int:
        """Run `posrig host serve` (in the host's namespace, if any) and wait until it announced ready."""
        self._child = Child(
            f"host {self.name!r} (posrig host serve)",
            self._command(bind),
            namespace=self.ctx.namespace,
            log=self.ctx.evidence.file("host-serve.log", "host process log", "text/plain"),
        )
        try:
            ready = self._child.start(READY_TIMEOUT)
        except ChildFailed as exc:
            self._child = None
            raise HostError(str(exc)) from None
        return parse_hostport(ready["listen"], what="the host's listen address")[1]

    def kill(self) -> None:
        """SIGKILL the host process (process mode): a crash, with no chance to clean up."""
        if self._child is None:
            raise HostError("kill() needs the host in process mode (rig option `process: true`)")
        self._child.kill()

    def restart(self) -> None:
        """Start the host process again on the same ledger and port (after kill())."""
        if not self.process_mode or self._bind is None or self._address is None:
            raise HostError("restart() needs the host in process mode (rig option `process: true`)")
        self._stop_process()
        self._spawn((self._bind[0], self._address[1]) if self._bind[1] == 0 else self._bind)

    def _stop_process(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.stop(timeout=3.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close(timeout=self.close_timeout / 2)
        self._stop_process()
        if self._pki is not None:
            if self._address is not None:
                withdraw(self._address)
            self._pki.close()
        if self._transcript is not None:
            self._transcript.close()
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                self.ctx.evidence.write_json(
                    "host-ledger.json", self._ledger.summary(), "acquirer ledger: payments and totals"
                )
            self._ledger.close()

    # -- interface -------------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise HostError(f"host {self.name!r} is not started")
        return self._address

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise HostError(f"host {self.name!r} is not started")
        return self._ledger

    def behave(
        self,
        what: str | Behaviour = "approve",
        *,
        code: str | None = None,
        delay_ms: float = 0.0,
        scaled: bool = True,
        times: int | None = None,
        label: str = "",
        **match: Any,
    ) -> int:
        """Set how the host answers matching requests from now on (newest rule wins). Returns the rule id.

        >>> host.behave("decline", code="51", amount="12.34")  # doctest: +SKIP
        >>> host.behave("silent", mti="0420", times=1)   # swallow one 0420: expect 0421  # doctest: +SKIP
        """
        behaviour = what if isinstance(what, Behaviour) else Behaviour.named(what, code, delay_ms, scaled)
        rule = Rule(Match.from_dict(match), behaviour, times, label)
        return self.ledger.add_rule(rule)

    def clear_behaviours(self) -> None:
        self.ledger.clear_rules()

    def identity(self) -> dict[str, Any]:
        info = super().identity()
        info.update(
            address=f"{self._address[0]}:{self._address[1]}" if self._address else None,
            spec=self.spec_name,
            framing=self.framing,
            ledger=str(self.ledger_path),
            runs="process" if self.process_mode else "threads",
            tls=self.tls.version if self.tls is not None else None,
        )
        return info
