#!/usr/bin/env python3
"""Counts UDP datagrams arriving on HOST:PORT until it reads a line on stdin, then prints
the count. Runs in a backend namespace, bound to the VIP."""
import select, socket, sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
s.bind((host, port))
s.setblocking(False)
print("ready", flush=True)
count = 0
while True:
    ready, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in ready:
        break
    while True:
        try:
            s.recv(64)
            count += 1
        except BlockingIOError:
            break
print(count, flush=True)
