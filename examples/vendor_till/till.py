"""ACME Kasse: an example vendor till, written the way a vendor writes one (nothing from posrig imported): its
own small ZVT client, receipts printed with python-escpos, and the posrig till contract served two ways:

    python till.py --http 127.0.0.1:0     # HTTP JSON (docs/till-contract.md); prints {"event": "ready", ...}
    python till.py --stdio                # the command driver's persistent helper: JSON lines on stdin/stdout

It finds its devices where posrig says they are: POSRIG_TERMINAL (ZVT over TCP), POSRIG_PRINTER (ESC/POS over
TCP), runs its timers at POSRIG_TIMING_SCALE and keeps its journal in POSRIG_STATE_DIR (it survives a restart).
"""

import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from escpos.printer import Network

SCALE = float(os.environ.get("POSRIG_TIMING_SCALE", "1"))
T3, RESULT, T4, QUERY_PAUSE, QUERIES = 5 * SCALE, 40 * SCALE, 180 * SCALE, 1.5 * SCALE, 4
ACK, NO_GOODS = bytes.fromhex("800000"), bytes.fromhex("846600")
CAPABILITIES = ["abort", "recover", "journal", "lifecycle"]


def hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


# -- ZVT: APDUs and the BMPs of a status information (04 0F) ----------------------------------------------------
FIXED = {0x01: 1, 0x02: 1, 0x03: 1, 0x04: 6, 0x05: 1, 0x0B: 3, 0x0C: 3, 0x0D: 2, 0x0E: 2, 0x17: 2, 0x19: 1,
         0x27: 1, 0x29: 4, 0x2A: 15, 0x37: 3, 0x3A: 2, 0x3B: 8, 0x3D: 3, 0x49: 2, 0x87: 2, 0x88: 3, 0x8A: 1,
         0x8C: 1, 0xA0: 1, 0xAA: 3, 0xBA: 5}
LLVAR, LLLVAR = {0x22, 0x23, 0x2D, 0x8B, 0xA7}, {0x24, 0x2E, 0x3C, 0x60, 0x9A, 0xAF}


def apdu(cls, ins, data=b""):
    size = bytes([len(data)]) if len(data) < 0xFF else b"\xff" + len(data).to_bytes(2, "little")
    return bytes([cls, ins]) + size + data


def bcd(number, size):
    return bytes.fromhex(f"{number:0{size * 2}d}")


def unbcd(raw):
    return int(raw.hex().replace("f", "") or 0)


def status_fields(data):
    """The fields of a 04 0F this till uses: result, amount, trace, receipt no, auth code, card, text."""
    out, i = {}, 0
    while i < len(data):
        bmp, i = data[i], i + 1
        if bmp == 0x06:                                          # TLV container: skip it (BER length)
            n = data[i]
            head = 1 + (n & 0x7F if n & 0x80 else 0)
            size = int.from_bytes(data[i + 1:i + head], "big") if n & 0x80 else n
            i += head + size
            continue
        if bmp in FIXED:
            value, i = data[i:i + FIXED[bmp]], i + FIXED[bmp]
        elif bmp in LLVAR or bmp in LLLVAR:
            places = 2 if bmp in LLVAR else 3
            size = int("".join(str(b & 0x0F) for b in data[i:i + places]))
            value, i = data[i + places:i + places + size], i + places + size
        else:
            break                                                # a BMP this till does not know: stop here
        if bmp == 0x27:
            out["result"] = value[0]
        elif bmp == 0x04:
            out["amount"] = unbcd(value)
        elif bmp == 0x0B:
            out["trace"] = unbcd(value)
        elif bmp == 0x87:
            out["receipt_no"] = unbcd(value)
        elif bmp == 0x3B:
            out["auth_code"] = value.rstrip(b"\0").decode("ascii", "replace")
        elif bmp == 0x22:
            out["masked_pan"] = "".join("*" if c == "e" else c for c in value.hex()).rstrip("f")
        elif bmp == 0x3C:
            out["text"] = value.decode("latin-1")
    return out


class Lost(Exception):
    """The terminal took the payment, then its result never came: ask it."""


class NotStarted(Exception):
    """The terminal never acknowledged the request."""


class Zvt:
    """One connection per command to the terminal's ECR port."""

    def __init__(self, address):
        self.address = address

    @staticmethod
    def _recv(sock, buf, timeout):
        """The next APDU (cls, ins, data) from `buf` (a bytearray kept across timeouts) and the socket."""
        sock.settimeout(timeout)
        while True:
            if len(buf) >= 3:
                head = 3 if buf[2] < 0xFF else 5
                if len(buf) >= head:
                    end = head + (buf[2] if head == 3 else int.from_bytes(buf[3:5], "little"))
                    if len(buf) >= end:
                        frame = (buf[0], buf[1], bytes(buf[head:end]))
                        del buf[:end]
                        return frame
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("terminal closed the connection")
            buf.extend(chunk)

    def run(self, request, answer_status=None, abort=None):
        """Send `request`, serve the terminal until 06 0F / 06 1E. Returns {status, completed, abort_code,
        answered}. NotStarted: no ack. Lost: silence or a cut link after the ack."""
        try:
            sock = socket.create_connection(self.address, timeout=T3)
        except OSError as exc:
            raise NotStarted(f"cannot connect: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result, buf = {"status": None, "completed": False, "abort_code": None, "answered": None}, bytearray()
        try:
            sock.sendall(request)
            try:
                cls, ins, data = self._recv(sock, buf, T3)
            except TimeoutError:                       # maybe only late: withdraw it right behind it
                sock.sendall(apdu(0x06, 0xB0))
                try:
                    cls, ins, data = self._recv(sock, buf, 2 * T3)
                except OSError:
                    raise NotStarted("no acknowledgement within T3") from None
                if (cls, ins) != (0x80, 0x00):
                    buf[:0] = apdu(cls, ins, data)
                cls, ins = 0x80, 0x00
            except OSError as exc:
                raise NotStarted(f"no acknowledgement: {exc}") from None
            if (cls, ins) != (0x80, 0x00):
                raise NotStarted(f"terminal refused with {cls:02x} {ins:02x}")
            begun = last = time.monotonic()
            abort_sent = False
            while True:
                if abort is not None and abort.is_set() and not abort_sent:
                    abort_sent = True
                    sock.sendall(apdu(0x06, 0xB0))
                now = time.monotonic()
                if now - begun > T4 or now - last > RESULT:
                    raise Lost(f"no result for {now - last:.2f}s")
                polling = abort is not None and not abort_sent
                try:
                    cls, ins, data = self._recv(sock, buf, 0.05 if polling else max(RESULT - (now - last), 0.01))
                except TimeoutError:
                    continue
                last = time.monotonic()
                if (cls, ins) == (0x04, 0x0F):
                    result["status"] = status_fields(data)
                    reply = answer_status(result["status"]) if answer_status else ACK
                    result["answered"] = "book" if reply == ACK else "no-goods"
                    sock.sendall(reply)
                elif (cls, ins) == (0x06, 0x0F):
                    result["completed"] = True
                    sock.sendall(ACK)
                    return result
                elif (cls, ins) == (0x06, 0x1E):
                    result["abort_code"] = data[0] if data else 0xFF
                    sock.sendall(ACK)
                    return result
                elif cls != 0x80:
                    sock.sendall(ACK)                  # intermediate status, print lines, ...
        except OSError as exc:
            raise Lost(f"link to the terminal lost: {exc}") from None
        finally:
            sock.close()

    def pay(self, cents, answer_status, abort):
        return self.run(apdu(0x06, 0x01, b"\x04" + bcd(cents, 6) + b"\x49" + bcd(978, 2)), answer_status, abort)

    def last_transaction(self):
        self.run(apdu(0x05, 0x01, bcd(0, 3)))
        return self.run(apdu(0x06, 0x20, bcd(0, 3)))

    def abort(self):
        try:
            with socket.create_connection(self.address, timeout=T3) as sock:
                sock.sendall(apdu(0x06, 0xB0))
                sock.settimeout(T3)
                sock.recv(16)
        except OSError:
            pass


# -- receipts -----------------------------------------------------------------------------------------------
class Printer:
    def __init__(self, address):
        self.address = address

    def _open(self):
        p = Network(*self.address, timeout=max(2 * SCALE, 0.05))
        p.open()
        return p

    def problem(self, p=None):
        try:
            q = p or self._open()
            try:
                if not q.is_online():
                    return "printer offline"
                if q.paper_status() == 0:
                    return "no paper"
            finally:
                if p is None:
                    q.close()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the printer cannot print
            return f"printer unreachable: {exc}"
        return None

    def receipt(self, sale, copy=False):
        """Print the sale's receipt (and open the drawer for cash); False when it did not all come out."""
        lines = ["ACME KASSE", "Filiale 7", f"Beleg {sale['sale_id']}"] + (["*** KOPIE ***"] if copy else [])
        for item in sale["basket"]:
            cents = round(float(item["price"]) * 100) * int(item.get("qty", 1))
            lines.append(f"{item.get('qty', 1)} x {item.get('name') or item['sku']}".ljust(30) + money(cents))
        lines.append("SUMME EUR".ljust(30) + money(sale["amount_cents"]))
        if sale["tender"] == "cash":
            lines.append("BAR".ljust(30) + money(sale["amount_cents"]))
        else:
            lines += ["KARTENZAHLUNG", "Karte".ljust(20) + (sale.get("masked_pan") or "-"),
                      "Genehmigung".ljust(20) + (sale.get("auth_code") or "-"),
                      "Trace".ljust(20) + str(sale.get("trace") or "-"),
                      "OFFLINE GENEHMIGT" if sale.get("offline") else "GENEHMIGT"]
        try:
            p = self._open()
        except Exception:  # noqa: BLE001
            return False
        try:
            if self.problem(p):
                return False
            for line in lines + ["", "Vielen Dank"]:
                p.textln(line)
            p.cut()
            if sale["tender"] == "cash" and not copy:
                p.cashdraw(2)
            return self.problem(p) is None
        except Exception:  # noqa: BLE001 - the receipt did not come out
            return False
        finally:
            p.close()


def money(cents):
    return f"{cents // 100}.{cents % 100:02d}"


# -- the till -----------------------------------------------------------------------------------------------
class Till:
    def __init__(self):
        self.zvt = Zvt(hostport(os.environ["POSRIG_TERMINAL"]))
        self.printer = Printer(hostport(os.environ["POSRIG_PRINTER"]))
        self.path = os.path.join(os.environ.get("POSRIG_STATE_DIR", "."), "acme-journal.json")
        self.sales = json.load(open(self.path)) if os.path.exists(self.path) else []
        self.busy, self.lock, self.abort_event = threading.Lock(), threading.Lock(), None
        threading.Thread(target=self._reprinter, daemon=True).start()

    def save(self, sale, state, **changes):
        with self.lock:
            sale.update(changes, state=state)
            sale["states"].append(state)
            with open(self.path + ".tmp", "w") as fh:
                json.dump(self.sales, fh)
            os.replace(self.path + ".tmp", self.path)

    def sell(self, basket, tender="card"):
        amount = sum(round(float(i["price"]) * 100) * int(i.get("qty", 1)) for i in basket)
        if not self.busy.acquire(blocking=False):
            raise RuntimeError("busy: a sale is running")
        try:
            sale = {"sale_id": f"ACME-{len(self.sales) + 1:05d}", "status": "pending", "tender": tender,
                    "amount_cents": amount, "basket": basket, "receipt": "none", "drawer_opened": False,
                    "offline": False, "states": []}
            self.sales.append(sale)
            self.save(sale, "open")
            if tender == "cash":
                self.settle(sale, {})
            else:
                self.abort_event = threading.Event()
                self.card(sale, self.abort_event)
            return sale
        finally:
            self.abort_event = None
            self.busy.release()

    def card(self, sale, abort):
        def goods(info):                          # the issue of goods: only when the receipt can come out
            if info.get("result", 0) != 0:
                return ACK
            return NO_GOODS if abort.is_set() or self.printer.problem() else ACK

        self.save(sale, "authorizing")
        try:
            r = self.zvt.pay(sale["amount_cents"], goods, abort)
        except NotStarted as exc:
            return self.query(sale, str(exc))
        except Lost as exc:
            self.zvt.abort()
            return self.query(sale, str(exc))
        info, code = r["status"] or {}, r["abort_code"]
        if r["completed"] and r["answered"] == "book" and info.get("result") == 0:
            self.settle(sale, info)
        elif r["answered"] == "no-goods" and r["completed"]:
            self.query(sale, "completed although the goods were refused")
        elif r["answered"] == "no-goods" or (code is not None and abort.is_set()):
            self.save(sale, "ended", status="cancelled" if abort.is_set() else "failed", message="goods refused")
        else:
            code = code if code is not None else info.get("result")
            self.save(sale, "ended", status="declined" if code is not None and 0 < code < 0x64 else "failed",
                      terminal_result=code)

    def query(self, sale, why):
        """Ask the terminal for its last transaction: is it this sale, and was it paid?"""
        self.save(sale, "querying", message=why)
        known = {(s.get("trace"), s.get("receipt_no")) for s in self.sales if s is not sale and s.get("trace")}
        for attempt in range(1, QUERIES + 1):
            try:
                last = self.zvt.last_transaction()
            except (NotStarted, Lost):
                time.sleep(QUERY_PAUSE * attempt)
                continue
            info = last["status"] or {}
            ours = info.get("amount") == sale["amount_cents"] and (info.get("trace"), info.get("receipt_no")) \
                not in known
            if ours and info.get("result") == 0 and last["abort_code"] is None:
                return self.settle(sale, info)
            return self.save(sale, "ended", status="failed", message=f"terminal has no payment for it ({why})")
        self.save(sale, "ended", status="unknown", message=f"terminal unreachable ({why})")

    def settle(self, sale, info):
        offline = str(info.get("text", "")).upper().startswith("OFFLINE")
        self.save(sale, "paid", status="paid", offline=offline, **{k: info[k] for k in (
            "masked_pan", "auth_code", "trace", "receipt_no") if k in info})
        self.save(sale, "printing", receipt="pending")     # owed until it is out: a power cut may tear it
        printed = self.printer.receipt(sale)
        self.save(sale, "printed" if printed else "receipt-owed", receipt="printed" if printed else "pending",
                  drawer_opened=sale["tender"] == "cash" and printed)
        return sale

    def abort(self):
        event = self.abort_event
        if event is not None:
            event.set()
        return {"aborted": self.sales[-1]["sale_id"] if event is not None else None}

    def recover(self):
        done = []
        with self.busy:
            for sale in self.sales:
                if sale["status"] in ("pending", "unknown") and sale["tender"] == "card":
                    done.append(self.query(sale, "recovering") or sale)
                elif sale["status"] == "paid" and sale["receipt"] != "printed":
                    done.append(self.reprint(sale))
        return {"sales": done}

    def reprint(self, sale):
        if self.printer.receipt(sale, copy=True):
            self.save(sale, "printed", receipt="printed")
        return sale

    def _reprinter(self):
        while True:
            time.sleep(2 * SCALE)
            owed = [s for s in self.sales if s["status"] == "paid" and s["receipt"] != "printed"]
            if owed and self.busy.acquire(blocking=False):
                try:
                    for sale in owed:
                        self.reprint(sale)
                finally:
                    self.busy.release()

    def do(self, action, request):
        if action == "health":
            return {"ok": True, "identity": {"model": "ACME Kasse", "version": "1.0"}, "capabilities": CAPABILITIES}
        if action == "sell":
            return self.sell(request["basket"], request.get("tender", "card"))
        if action == "journal":
            with self.lock:                         # a copy: a sale may be changing in another thread
                return {"sales": json.loads(json.dumps(self.sales))}
        return {"abort": self.abort, "recover": self.recover}[action]()


# -- the contract, over HTTP or as JSON lines ---------------------------------------------------------------
ROUTES = {("GET", "/health"): "health", ("POST", "/sale"): "sell", ("GET", "/journal"): "journal",
          ("POST", "/abort"): "abort", ("POST", "/recover"): "recover"}


def serve_http(till, address):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def handle_one(self, method):
            action = ROUTES.get((method, self.path))
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            try:
                status, answer = (200, till.do(action, body)) if action else (404, {"error": "no such endpoint"})
            except RuntimeError as exc:
                status, answer = 409, {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - a bad request, told to the caller
                status, answer = 400, {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.handle_one("GET")

        def do_POST(self):
            self.handle_one("POST")

    server = ThreadingHTTPServer(hostport(address), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(json.dumps({"event": "ready", "control": f"{host}:{port}"}), flush=True)
    server.serve_forever()


def serve_stdio(till):
    out = threading.Lock()

    def answer(msg):
        try:
            reply = {"id": msg["id"], "result": till.do(msg["action"], msg.get("request") or {})}
        except Exception as exc:  # noqa: BLE001 - told to posrig, the till keeps running
            reply = {"id": msg.get("id"), "error": f"{type(exc).__name__}: {exc}"}
        with out:
            print(json.dumps(reply), flush=True)

    print(json.dumps({"event": "ready", "capabilities": CAPABILITIES}), flush=True)
    for line in iter(sys.stdin.readline, ""):
        threading.Thread(target=answer, args=(json.loads(line),), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        serve_http(Till(), sys.argv[2])
    else:
        serve_stdio(Till())
