#!/usr/bin/env python3
"""Stands in for systemd's notification socket: binds an AF_UNIX datagram
socket at PATH, appends every datagram received to LOG (one per line,
newlines inside shown as '|'), until killed.

    notify_listener.py PATH LOG
"""
import os
import socket
import sys

path, log = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o777)  # the services run as the kvcached user
with open(log, "a", buffering=1) as out:
    while True:
        data = sock.recv(65536)
        out.write(data.decode("utf-8", "replace").replace("\n", "|") + "\n")
