#!/usr/bin/env bash
# Measures what half-sent requests cost powgate in memory: starts BINARY
# (default target/release/powgate) on a scratch database, holds N
# connections (default 2500) that each sent HEADER_KIB KiB of an unfinished
# header block (default 30), from distinct loopback addresses so no cap
# refuses them, and prints the server's RSS before and after.
#
#   scripts/half-sent-rss.sh [BINARY] [N] [HEADER_KIB]
set -euo pipefail
bin=$(realpath "${1:-target/release/powgate}")
n=${2:-2500}
kib=${3:-30}
port=18990
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
ulimit -n $((n * 2 + 256))
cd "$dir"
POW_LISTEN=127.0.0.1:$port POW_TRUSTED_PROXIES="" POW_HEADER_READ_TIMEOUT_SECS=120 \
    POW_MAX_CONNECTIONS=$((n + 256)) "$bin" serve >serve.log 2>&1 &
pid=$!
sleep 2
python3 - "$pid" "$port" "$n" "$kib" <<'PY'
import socket, sys, time

pid, port, n, kib = (int(a) for a in sys.argv[1:])

def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

before = rss_mib()
socks = []
for i in range(n):
    # 20 addresses of a /24 with 10 connections each: under every cap.
    s = socket.socket()
    s.bind((f"127.1.{i // 200}.{(i % 200) // 10 + 2}", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: " + b"a" * (kib * 1024))
    socks.append(s)
time.sleep(3)
still_open = 0
for s in socks:
    s.setblocking(False)
    try:
        s.recv(1, socket.MSG_PEEK)  # an answer (431) or a close
    except BlockingIOError:
        still_open += 1
    except OSError:
        pass
after = rss_mib()
print(f"{n} half-sent requests of {kib} KiB, {still_open} still open: "
      f"RSS {before:.0f} -> {after:.0f} MiB, {(after - before) * 1024 / n:.0f} KiB each")
PY
