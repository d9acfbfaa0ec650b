#!/usr/bin/env python3
"""Reference client for powgate's TCP gate (protocol POWGATE/1, see the
README's "TCP gate"): solves the challenge, then pipes stdin to the service
and the service to stdout. Standard library only, plus argon2-cffi
(Debian: python3-argon2), since Python has no argon2 of its own.

    python3 tcp_client.py HOST PORT [TOKEN]
"""
import hashlib, socket, sys, threading
from argon2.low_level import Type, hash_secret_raw


def search(salt, t, m, p, length, difficulty):
    """The first nonce whose argon2id hash, as a 256-bit number, is at most
    the target (2^256 - 1) // difficulty."""
    target, nonce = (2**256 - 1) // difficulty, 0
    while True:
        h = hash_secret_raw(nonce.to_bytes(8, "big"), salt, t, m, p, length, Type.ID, 19)
        if int.from_bytes(h[:32], "big") <= target:
            return nonce
        nonce += 1


def ticket(salt, bits):
    """The first k whose SHA-256("powgate-ticket-v1" + salt + k) starts with bits zero bits."""
    k = 0
    while bits and int.from_bytes(hashlib.sha256(b"powgate-ticket-v1" + salt + k.to_bytes(8, "big")).digest(), "big") >> (256 - bits):
        k += 1
    return k


def main(host, port, token=None):
    sock = socket.create_connection((host, int(port)))
    f = sock.makefile("rb")
    words = f.readline().decode().split()
    if words[:2] != ["POWGATE/1", "CHALLENGE"] and not token:
        sys.exit("no challenge: " + " ".join(words))
    if token:
        answer = "TOKEN " + token
    else:
        fields = dict(w.split("=", 1) for w in words[3:])
        salt = bytes.fromhex(fields["salt"])
        t, m, p, length, d, bits = (int(fields[k]) for k in ("t", "m", "p", "len", "difficulty", "ticket_bits"))
        print(f"powgate: solving difficulty {d}", file=sys.stderr)
        answer = f"NONCE {words[2]} {search(salt, t, m, p, length, d)} {ticket(salt, bits)}"
    sock.sendall(answer.encode() + b"\n")
    reply = f.readline().decode().rstrip("\r\n")
    if not reply.startswith("OK "):
        sys.exit("refused: " + reply)
    print("powgate: passed; token " + reply[3:], file=sys.stderr)

    def upload():
        for chunk in iter(lambda: sys.stdin.buffer.read1(65536), b""):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upload, daemon=True).start()
    for chunk in iter(lambda: f.read1(65536), b""):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
