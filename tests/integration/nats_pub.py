#!/usr/bin/env python3
"""Publishes synthetic records to NATS (core protocol, no client library): the capacity tests
and the simulator use it to put reports carrying accelerator summaries into the stream.

    nats_pub.py nats://127.0.0.1:PORT < lines     each line: SUBJECT<TAB>MSG-ID<TAB>PAYLOAD

JetStream stores what is published on the stream's subjects; a PING/PONG at the end makes sure
the server has read everything before we exit. bench/capacity_records.py imports connect(),
frame() and flush() to publish at a pace of its own."""
import socket
import sys
import urllib.parse


def connect(url_text):
    """A connected socket and its reader, past INFO and CONNECT."""
    url = urllib.parse.urlparse(url_text)
    s = socket.create_connection((url.hostname, url.port), timeout=10)
    f = s.makefile("rb")
    f.readline()  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":false}\r\n')
    return s, f


def frame(subject, msg_id, payload):
    """One HPUB with a Nats-Msg-Id header (JetStream's duplicate window keys on it)."""
    hdr = ("NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id).encode()
    body = payload.encode()
    return b"HPUB %s %d %d\r\n" % (subject.encode(), len(hdr), len(hdr) + len(body)) + hdr + body + b"\r\n"


def flush(s, f):
    """PING, then wait for PONG: the server has read everything sent before."""
    s.sendall(b"PING\r\n")
    while True:
        reply = f.readline()
        if not reply:
            sys.exit("connection closed before PONG")
        if reply.startswith(b"PONG"):
            return
        if reply.startswith(b"-ERR"):
            sys.exit(reply.decode().strip())


def main():
    s, f = connect(sys.argv[1])
    out = []
    n = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        subject, msg_id, payload = line.split("\t", 2)
        out.append(frame(subject, msg_id, payload))
        n += 1
        if len(out) > 2000:
            s.sendall(b"".join(out))
            out = []
    s.sendall(b"".join(out))
    flush(s, f)
    print(n)


if __name__ == "__main__":
    main()
