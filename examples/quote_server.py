#!/usr/bin/env python3
"""A demo service for powgate's TCP gate: sends one quote from a file (one
quote per line) to each connection, then closes it. Not part of powgate.

    python3 quote_server.py [--listen 127.0.0.1:7001] [quotes.txt]
"""
import argparse, random, socketserver

parser = argparse.ArgumentParser()
parser.add_argument("--listen", default="127.0.0.1:7001")
parser.add_argument("quotes", nargs="?", default=__file__.replace("quote_server.py", "quotes.txt"))
args = parser.parse_args()
with open(args.quotes, encoding="utf-8") as f:
    quotes = [q.strip() for q in f if q.strip()]


class Quote(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write((random.choice(quotes) + "\n").encode())


host, port = args.listen.rsplit(":", 1)
socketserver.ThreadingTCPServer.allow_reuse_address = True
with socketserver.ThreadingTCPServer((host, int(port)), Quote) as server:
    print(f"quotes on {args.listen}", flush=True)
    server.serve_forever()
