#!/usr/bin/env python3
"""Timed probes of powgate's store paths, for part (g) of scripts/bench.sh.

One request at a time over one keep-alive connection per server, so each
figure is the latency of that path alone. Every answer is checked: a probe
that gets anything but what the path must answer stops with a message
instead of timing it. Prints one JSON object.

  seed-sqlite DB PREFIX COUNT NOW EXPIRES   insert COUNT tokens into an SQLite
                                            store, in one transaction
  wait-healthz URL START_NS PID             poll /healthz until 200; the ms
                                            since START_NS (time.time_ns()), or
                                            fail as soon as process PID is gone
  issue URL COUNT                           POST /api/challenge, then the timed
                                            POST /api/solve (difficulty 1, so
                                            nonce 0 is right), from a new /24 each
  new-address URL PREFIX FIRST COUNT        seeded tokens FIRST.. : once from
                                            their own address (untimed, caches
                                            the token), then timed from a new one
  revocation A B ADMIN_KEY PREFIX FIRST COUNT  revoke on A, poll B until it
                                            refuses; the time from the revoke
                                            request to B's first refusal

The seeded tokens: token i is the UUIDv4 PREFIX followed by i in 12 hex
digits, and its first address is 10.(i >> 16).((i >> 8) & 255).(i & 255)
(scripts/bench-verify-tokens.lua draws them the same way). The store keeps
SHA-256 of the token's 16 bytes (server/src/token.rs), as computed here for
SQLite and in SQL for PostgreSQL; the bench checks that seeded tokens pass.
"""

import hashlib
import http.client
import json
import sqlite3
import statistics
import sys
import time
import urllib.parse


def token_of(prefix, i):
    return f"{prefix}{i:012x}"


def address_of(i):
    return f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


class Client:
    """One keep-alive connection to a server."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def request(self, method, path, headers=None, body=None):
        """(status, headers, body) of one request."""
        headers = dict(headers or {})
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r, r.read()

    def verify(self, token, ip):
        """The status code and X-Powgate-Status of /verify-token."""
        status, r, _ = self.request(
            "GET", "/verify-token", {"Authorization": f"Bearer {token}", "X-Real-IP": ip}
        )
        return status, r.getheader("X-Powgate-Status")


def percentiles_ms(samples_s):
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(q[98], 3),
        "max_ms": round(ms[-1], 3),
    }


def seed_sqlite(db, prefix, count, now, expires):
    raw = prefix.replace("-", "")
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    first = c.execute("SELECT coalesce(max(id), 0) + 1 FROM tokens").fetchone()[0]

    def rows():
        for i in range(count):
            digest = hashlib.sha256(bytes.fromhex(f"{raw}{i:012x}")).digest()
            address = address_of(i)
            # The row's addresses, as the store writes them: [[key, first seen]].
            ips = json.dumps([[address, now]], separators=(",", ":"))
            yield (first + i, digest, now, expires, address, ips)

    c.executemany(
        "INSERT INTO tokens (id, token_hash, created_at, expires_at, issuer_ip, difficulty, ips)"
        " VALUES (?, ?, ?, ?, ?, 1, ?)",
        rows(),
    )
    c.execute(
        "INSERT INTO token_requests (token_id) SELECT id FROM tokens WHERE id >= ? ORDER BY id",
        (first,),
    )
    c.execute("COMMIT")
    c.close()
    return {"tokens": count}


def alive(pid):
    """Whether process `pid` runs: not gone, and not a zombie its parent
    has yet to collect."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_healthz(url, start_ns, pid):
    u = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not alive(pid):
            fail(f"the server of {url} exited before answering")
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return {"startup_ms": round((time.time_ns() - int(start_ns)) / 1e6, 1)}
        except OSError:
            pass
        time.sleep(0.005)
    fail(f"{url}/healthz did not answer 200 within 60 s")


def issue(url, count):
    c = Client(url)
    took = []
    for k in range(count):
        # A /24 of its own for each, so no per-address or per-network
        # budget is what gets measured.
        ip = f"{11 + k // 65536}.{(k // 256) % 256}.{k % 256}.1"
        status, _, body = c.request("POST", "/api/challenge", {"X-Real-IP": ip}, {})
        if status != 200:
            fail(f"POST /api/challenge answered {status}: {body[:200]!r}")
        ch = json.loads(body)
        if ch["difficulty"] != 1 or ch["ticket_bits"] != 0:
            fail(f"the challenge asks for difficulty {ch['difficulty']} and a ticket of "
                 f"{ch['ticket_bits']} bits; the bench needs 1 and none")
        t0 = time.perf_counter()
        status, _, body = c.request(
            "POST", "/api/solve", {"X-Real-IP": ip}, {"challenge": ch["challenge"], "nonce": 0}
        )
        took.append(time.perf_counter() - t0)
        if status != 200 or "token" not in json.loads(body):
            fail(f"POST /api/solve answered {status}: {body[:200]!r}")
    return percentiles_ms(took)


def new_address(url, prefix, first, count):
    c = Client(url)
    took = []
    for i in range(first, first + count):
        token = token_of(prefix, i)
        if c.verify(token, address_of(i)) != (200, "valid"):
            fail(f"seeded token {i} does not pass from its own address")
        new_ip = f"192.168.{(i >> 8) & 255}.{i & 255}"
        t0 = time.perf_counter()
        answer = c.verify(token, new_ip)
        took.append(time.perf_counter() - t0)
        if answer != (200, "valid"):
            fail(f"seeded token {i} from a new address: {answer}, not (200, 'valid')")
    return percentiles_ms(took)


def revocation(url_a, url_b, admin_key, prefix, first, count):
    a, b = Client(url_a), Client(url_b)
    admin = {"Authorization": f"Bearer {admin_key}"}
    took = []
    polls = 0
    for i in range(first, first + count):
        token, ip = token_of(prefix, i), address_of(i)
        # B holds the token in its cache, as it would for a visitor.
        if b.verify(token, ip) != (200, "valid") or b.verify(token, ip) != (200, "valid"):
            fail(f"seeded token {i} does not pass on B")
        status, _, body = a.request("POST", "/api/admin/tokens/find", admin, {"token": token})
        if status != 200:
            fail(f"POST /api/admin/tokens/find on A answered {status}: {body[:200]!r}")
        token_id = json.loads(body)["token"]["id"]
        t0 = time.perf_counter()
        status, _, body = a.request("POST", f"/api/admin/tokens/{token_id}/revoke", admin)
        if status != 200 or json.loads(body).get("revoked") != 1:
            fail(f"revoking token {token_id} on A answered {status}: {body[:200]!r}")
        while True:
            answer = b.verify(token, ip)
            polls += 1
            if answer != (200, "valid"):
                break
            if time.perf_counter() - t0 > 60:
                fail(f"B still passes token {i} 60 s after its revocation on A")
        took.append(time.perf_counter() - t0)
        if answer[1] != "revoked":
            fail(f"B refused revoked token {i} with {answer}, not as revoked")
    return {**percentiles_ms(took), "polls": polls}


def main(argv):
    what, args = argv[1], argv[2:]
    if what == "seed-sqlite":
        db, prefix, count, now, expires = args
        out = seed_sqlite(db, prefix, int(count), int(now), int(expires))
    elif what == "wait-healthz":
        out = wait_healthz(*args)
    elif what == "issue":
        out = issue(args[0], int(args[1]))
    elif what == "new-address":
        out = new_address(args[0], args[1], int(args[2]), int(args[3]))
    elif what == "revocation":
        out = revocation(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]))
    else:
        fail(f"unknown probe {what!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
