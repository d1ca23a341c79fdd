"""A vendor's till command line, as the `command` driver expects one: `vendor_cli.py URL ACTION`, request JSON
on stdin, one JSON object on stdout. It forwards to a till serving the HTTP contract (here: the reference
till)."""

import json
import sys
import urllib.error
import urllib.request

url, action = sys.argv[1], sys.argv[2]
if action == "broken":
    print("not json")
    sys.exit(0)
if action == "fail":
    print("printer jammed", file=sys.stderr)
    sys.exit(3)
request = json.loads(sys.stdin.read() or "{}")
method, path = {"sell": ("POST", "/sale"), "journal": ("GET", "/journal"), "recover": ("POST", "/recover"),
                "health": ("GET", "/health")}[action]
body = json.dumps(request).encode() if method == "POST" else None
req = urllib.request.Request(url + path, data=body, method=method,
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as resp:
    print(resp.read().decode())
