"""The `http` till driver: any till that serves the till contract (docs/till-contract.md) over HTTP JSON.

    devices:
      till: {kind: till, mode: real, driver: http, transport: http, address: "http://192.0.2.40:8080"}
      # or launched by posrig in the till's node; the control address comes from its ready line:
      till: {kind: till, mode: real, driver: http, transport: http, launch: "acme-till --control 127.0.0.1:0"}

`GET /health` carries the device endpoints as request headers (X-Posrig-Terminal, ...), and its answer may
declare the till's capabilities. The reference till serves the same contract, so this client drives it too.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.till import Till, TillCannot
from harness.till import endpoints as ep
from harness.till.lifecycle import Launched, TillStartError
from harness.till.outcome import ContractError, SaleOutcome

if TYPE_CHECKING:
    from harness.topology import Namespace


class TillUnreachable(ConnectionError):
    """The till's control API did not answer; the message names the address."""


class _Connection(http.client.HTTPConnection):
    """An HTTP connection whose socket is made inside a network namespace (or on this machine when None)."""

    def __init__(self, host: str, port: int, timeout: float, namespace: Namespace | None):
        super().__init__(host, port, timeout=timeout)
        self._namespace = namespace

    def connect(self) -> None:
        if self._namespace is None:
            super().connect()
        else:
            self.sock = self._namespace.connect((self.host, self.port), timeout=self.timeout)
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RefusedRequest(ContractError):
    """The till answered an error status; `status` is the HTTP status (404: the till lacks the endpoint)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class TillClient:
    """JSON requests to a till's control API. One connection per request, so calls may overlap (abort)."""

    def __init__(self, host: str, port: int, *, namespace: Namespace | None = None, timeout: float = 30.0,
                 context: dict[str, str] | None = None):
        self.host, self.port, self.namespace, self.timeout = host, port, namespace, timeout
        self.context = dict(context or {})        # device endpoints, sent as headers on GET /health

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> TillClient:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"till address {url!r} must be an http:// URL such as http://127.0.0.1:8080")
        return cls(parts.hostname, parts.port or 80, **kwargs)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: Any = None, timeout: float | None = None,
                headers: dict[str, str] | None = None) -> Any:
        """The decoded JSON answer. ContractError for non-JSON or an error status, TillUnreachable when
        down."""
        conn = _Connection(self.host, self.port, timeout or self.timeout, self.namespace)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise TillUnreachable(f"till control API {self.url}{path}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        try:
            answer = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            raise ContractError(f"{method} {self.url}{path} answered {resp.status} with non-JSON: "
                                f"{raw[:200]!r}") from None
        if resp.status >= 400:
            err = answer.get("error") if isinstance(answer, dict) else answer
            raise RefusedRequest(f"{method} {self.url}{path} answered {resp.status}: {err}", resp.status)
        return answer

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health", headers=ep.headers(self.context))

    def sell(self, basket: list[dict[str, Any]], tender: str = "card", timeout: float | None = None,
             client_ref: str | None = None) -> SaleOutcome:
        body: dict[str, Any] = {"basket": basket, "tender": tender}
        if client_ref:
            body["client_ref"] = client_ref
        return SaleOutcome.from_dict(self.request("POST", "/sale", body, timeout=timeout), source=self.url)

    def journal(self) -> list[dict[str, Any]]:
        answer = self.request("GET", "/journal")
        if not isinstance(answer, dict) or not isinstance(answer.get("sales"), list):
            raise ContractError(f"GET {self.url}/journal must answer {{\"sales\": [...]}}, "
                                f"got {answer!r:.200}")
        return answer["sales"]

    def abort(self) -> dict[str, Any]:
        return self.request("POST", "/abort", {})

    def recover(self, timeout: float | None = None) -> list[SaleOutcome]:
        answer = self.request("POST", "/recover", {}, timeout=timeout)
        sales = answer.get("sales") if isinstance(answer, dict) else None
        if not isinstance(sales, list):
            raise ContractError(f"POST {self.url}/recover must answer {{\"sales\": [...]}}, "
                                f"got {answer!r:.200}")
        return [SaleOutcome.from_dict(s, source=self.url) for s in sales]


class HttpTill(Launched, Till):
    """A vendor till reached over HTTP at the rig's `address`, or launched by posrig (`launch`) and reached at
    the control address its ready line names. Options: sale_timeout seconds (default 300)."""

    default_capabilities = frozenset({"journal", "abort", "recover"})

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.client: TillClient | None = None
        self._identity: dict[str, Any] = {}
        self._declared: list[str] | None = None
        self._values: dict[str, str] = {}

    @property
    def sale_timeout(self) -> float:
        return float((self.spec.options or {}).get("sale_timeout", 300.0))

    def _connect(self, client: TillClient) -> None:
        self.client = client
        health = client.health()
        if not isinstance(health, dict) or health.get("ok") is not True:
            raise ContractError(f"GET {client.url}/health must answer {{\"ok\": true, ...}}, "
                                f"got {health!r:.200}")
        self._identity = dict(health.get("identity") or {})
        caps = health.get("capabilities")
        if caps is not None and not (isinstance(caps, list) and all(isinstance(c, str) for c in caps)):
            raise ContractError(f"GET {client.url}/health: capabilities must be a list of names, got {caps!r}")
        self._declared = caps

    def declared_capabilities(self) -> list[str] | None:
        return self._declared

    def _url(self, ready: dict[str, Any] | None) -> str:
        if self.spec.address:
            return self.spec.address
        control = (ready or {}).get("control")
        if not control:
            raise TillStartError(f"till {self.name!r}: no `address` in the rig and the launched till's ready "
                                 "line names no control address; print {\"event\": \"ready\", \"control\": "
                                 "\"HOST:PORT\"} or set `address: http://HOST:PORT`")
        return control if str(control).startswith("http") else f"http://{control}"

    def _probe(self) -> bool:
        TillClient.from_url(self.spec.address, namespace=self.ctx.namespace, timeout=1.0).health()
        return True

    def start(self) -> None:
        self._values = self.endpoint_values()
        if not self.spec.address and not (self.spec.options or {}).get("launch"):
            raise ContractError(f"till {self.name!r}: the http driver needs `address: http://HOST:PORT` or "
                                "`launch` in the rig")
        ready = self._launch(self._values, probe=self._probe if self.spec.address else None)
        self._relaunched(ready or {})

    def _relaunched(self, ready: dict[str, Any]) -> None:
        self._connect(TillClient.from_url(self._url(ready), namespace=self.ctx.namespace,
                                          context=self._values))

    def close(self) -> None:
        try:
            self._stop_launched()
        finally:
            self.client = None

    def _client(self) -> TillClient:
        if self.client is None:
            raise RuntimeError(f"till {self.name!r} is not started")
        return self.client

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "url": self.client.url if self.client else None, "till": self._identity}

    def sell(self, basket: list[dict[str, Any]], tender: str = "card") -> SaleOutcome:
        return self._client().sell(basket, tender, timeout=self.sale_timeout)

    def journal(self) -> list[dict[str, Any]]:
        return self._client().journal()

    def abort(self) -> None:
        try:
            self._client().abort()
        except RefusedRequest as exc:
            if exc.status in (404, 405, 501):
                raise TillCannot("abort", f"the till cannot abort: {exc}") from None
            raise

    def recover(self) -> list[SaleOutcome]:
        try:
            return self._client().recover(timeout=self.sale_timeout)
        except RefusedRequest as exc:
            if exc.status in (404, 405, 501):
                return []
            raise
