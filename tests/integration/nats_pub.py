#!/usr/bin/env python3
"""Publishes synthetic records to NATS (core protocol, no client library): the capacity tests
and the simulator use it to put reports carrying accelerator summaries into the stream.

    nats_pub.py nats://127.0.0.1:PORT < lines     each line: SUBJECT<TAB>MSG-ID<TAB>PAYLOAD

JetStream stores what is published on the stream's subjects; a PING/PONG at the end makes sure
the server has read everything before we exit."""
import socket
import sys
import urllib.parse


def main():
    url = urllib.parse.urlparse(sys.argv[1])
    s = socket.create_connection((url.hostname, url.port), timeout=10)
    f = s.makefile("rb")
    f.readline()  # INFO
    out = [b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":false}\r\n']
    n = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        subject, msg_id, payload = line.split("\t", 2)
        hdr = ("NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id).encode()
        body = payload.encode()
        out.append(b"HPUB %s %d %d\r\n" % (subject.encode(), len(hdr), len(hdr) + len(body)))
        out.append(hdr + body + b"\r\n")
        n += 1
        if len(out) > 2000:
            s.sendall(b"".join(out))
            out = []
    out.append(b"PING\r\n")
    s.sendall(b"".join(out))
    while True:
        reply = f.readline()
        if not reply:
            sys.exit("connection closed before PONG")
        if reply.startswith(b"PONG"):
            break
        if reply.startswith(b"-ERR"):
            sys.exit(reply.decode().strip())
    print(n)


if __name__ == "__main__":
    main()
