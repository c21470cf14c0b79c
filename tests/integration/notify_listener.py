#!/usr/bin/env python3
"""Plays systemd's side of sd_notify(3) for the tests: binds a datagram socket (a path, or
@name for an abstract one) and appends every message it receives to OUT, one line each, its
newlines written as '|'. Each line starts with 'socket=yes ' or 'socket=no ': whether WATCH (the
daemon's control socket) existed when the message arrived, so that the test can tell READY=1
came only after the daemon listened. Runs until killed."""
import os
import socket
import sys

path, out, watch = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
with open(out + ".tmp", "w"):
    pass
os.rename(out + ".tmp", out)  # the test waits for OUT: the socket is bound by then
with open(out, "a", buffering=1) as f:
    while True:
        data = s.recv(4096).decode("utf-8", "replace")
        exists = "yes" if os.path.exists(watch) else "no"
        f.write("socket=%s %s\n" % (exists, data.replace("\n", "|")))
