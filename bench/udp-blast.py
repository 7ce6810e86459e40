#!/usr/bin/env python3
"""Sends UDP datagrams to HOST:PORT as fast as it can for SECONDS, from FLOWS sockets
(each a flow of its own), and prints how many it sent. Runs in the lab's client namespace."""
import socket, sys, time

host, port, seconds, flows = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
socks = []
for _ in range(flows):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect((host, port))
    socks.append(s)
payload = b"x" * 18
sent = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for s in socks:
        for _ in range(64):
            try:
                s.send(payload)
                sent += 1
            except BlockingIOError:
                break
print(sent)
