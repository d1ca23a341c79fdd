"""The `http` till driver: any till that serves the till contract (docs/till-contract.md) over HTTP JSON.

    devices:
      till: {kind: till, mode: real, driver: http, transport: http, address: "http://192.0.2.40:8080"}

The reference till serves the same contract, so this client is what drives it too.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.till import Till
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


class TillClient:
    """JSON requests to a till's control API. One connection per request, so calls may overlap (abort)."""

    def __init__(self, host: str, port: int, *, namespace: Namespace | None = None, timeout: float = 30.0):
        self.host, self.port, self.namespace, self.timeout = host, port, namespace, timeout

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> TillClient:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"till address {url!r} must be an http:// URL such as http://127.0.0.1:8080")
        return cls(parts.hostname, parts.port or 80, **kwargs)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        """The decoded JSON answer. ContractError for non-JSON or an error status, TillUnreachable when
        down."""
        conn = _Connection(self.host, self.port, timeout or self.timeout, self.namespace)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
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
            raise ContractError(f"{method} {self.url}{path} answered {resp.status}: {err}")
        return answer

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

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


class HttpTill(Till):
    """A vendor till reached over HTTP at the rig's `address` (options: sale_timeout seconds, default 300)."""

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.client: TillClient | None = None
        self._identity: dict[str, Any] = {}

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

    def start(self) -> None:
        if not self.spec.address:
            raise ContractError(f"till {self.name!r}: the http driver needs "
                                "`address: http://HOST:PORT` in the rig")
        self._connect(TillClient.from_url(self.spec.address, namespace=self.ctx.namespace))

    def close(self) -> None:
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
        self._client().abort()

    def recover(self) -> list[SaleOutcome]:
        return self._client().recover(timeout=self.sale_timeout)
