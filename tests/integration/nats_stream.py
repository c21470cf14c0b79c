#!/usr/bin/env python3
"""Lists a JetStream stream's messages by their ids (core protocol, no client library): the grid
test compares what the stream holds with the exported archive without depending on how a record
is encoded in the message body.

    nats_stream.py nats://HOST:PORT[,nats://...] STREAM     one line per message, stream order:
                                                            STREAM-SEQ<TAB>SUBJECT<TAB>NATS-MSG-ID
    nats_stream.py URLS STREAM --delete-consumer NAME       deletes a consumer of the stream (what
                                                            an operator or a lost replica does to
                                                            a running exporter)

Each message is read with $JS.API.STREAM.MSG.GET (any server of a cluster forwards it to the
stream's leader), many requests in flight at once. The first URL that accepts a connection is
used. An API error other than "no message found" (a deleted sequence) ends with status 1 and the
error, so that a caller can retry during a leader election."""
import base64
import json
import socket
import sys
import urllib.parse

WINDOW = 256


def connect(urls):
    last = None
    for u in urls.split(","):
        url = urllib.parse.urlparse(u)
        try:
            s = socket.create_connection((url.hostname, url.port), timeout=10)
            return s, s.makefile("rb")
        except OSError as e:
            last = e
    sys.exit("cannot connect to %s: %s" % (urls, last))


class Client:
    def __init__(self, urls):
        self.sock, self.f = connect(urls)
        self.f.readline()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
                          b"SUB _GN_INBOX.* 1\r\n")

    def request(self, subject, reply, body):
        self.sock.sendall(b"PUB %s _GN_INBOX.%s %d\r\n%s\r\n" %
                          (subject.encode(), reply.encode(), len(body), body))

    def reply(self):
        """(reply id, payload) of the next message on the inbox."""
        while True:
            line = self.f.readline()
            if not line:
                sys.exit("connection closed")
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                sys.exit(line.decode().strip())
            parts = line.split()
            if parts[0] == b"MSG":
                size = int(parts[-1])
                payload = self.f.read(size + 2)[:size]
                return parts[1].decode().split(".", 1)[1], payload
            if parts[0] == b"HMSG":  # e.g. a 503 "no responders" status
                size = int(parts[-1])
                hsize = int(parts[-2])
                data = self.f.read(size + 2)[:size]
                return parts[1].decode().split(".", 1)[1], data[hsize:] or data[:hsize]


def msg_id(hdrs):
    for line in base64.b64decode(hdrs).decode(errors="replace").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "nats-msg-id":
            return value.strip()
    return "-"


def delete_consumer(c, stream, name):
    c.request("$JS.API.CONSUMER.DELETE.%s.%s" % (stream, name), "delete", b"")
    _, payload = c.reply()
    r = json.loads(payload)
    if "error" in r or not r.get("success"):
        sys.exit("delete consumer %s: %s" % (name, r.get("error", {}).get("description")))


def main():
    urls, stream = sys.argv[1], sys.argv[2]
    c = Client(urls)
    if sys.argv[3:4] == ["--delete-consumer"]:
        delete_consumer(c, stream, sys.argv[4])
        return
    c.request("$JS.API.STREAM.INFO." + stream, "info", b"")
    _, payload = c.reply()
    info = json.loads(payload)
    if "error" in info:
        sys.exit("stream info: %s" % info["error"].get("description"))
    first, last = info["state"]["first_seq"], info["state"]["last_seq"]
    if info["state"]["messages"] == 0:
        return
    out = {}
    nxt = first
    inflight = 0
    while nxt <= last or inflight:
        while nxt <= last and inflight < WINDOW:
            c.request("$JS.API.STREAM.MSG.GET." + stream, str(nxt), b'{"seq":%d}' % nxt)
            nxt += 1
            inflight += 1
        rid, payload = c.reply()
        inflight -= 1
        try:
            r = json.loads(payload)
        except ValueError:
            sys.exit("message %s: not JSON: %r" % (rid, payload[:200]))
        if "error" in r:
            if r["error"].get("err_code") == 10037:  # no message found: deleted
                continue
            sys.exit("message %s: %s" % (rid, r["error"].get("description")))
        m = r["message"]
        out[m["seq"]] = "%d\t%s\t%s" % (m["seq"], m["subject"], msg_id(m.get("hdrs", "")))
    sys.stdout.write("".join(out[k] + "\n" for k in sorted(out)))


if __name__ == "__main__":
    main()
