#!/usr/bin/env python3
"""A hand-made uplink client for the collector's refusal tests: mutual TLS with the given
certificate, a hello, then frames given on the command line, and it prints the frames the
collector answers with (kind, and for reject its reason) until the collector closes.

  hostile_client.py HOST PORT CA CERT KEY NODE FRAME...
  FRAME: report:<file with a signed report's bytes> | catalog:<file> | rawhex:<hex bytes>

And hostile HTTP clients for an HTTP endpoint (the agent's scrape endpoint, the capacity view);
each prints one line saying what the server did:

  hostile_client.py http HOST PORT MODE [ARG]
  MODE: bigheader [BYTES]   one header line of BYTES (default 65536): "status 431" or "closed"
        longline [BYTES]    a request target of BYTES (default 65536): "status 414" or "closed"
        garbage             random bytes, no request: "status 400" or "closed"
        method              a POST: "status 405"
        slowloris [SECS]    a header byte per second for at most SECS (default 30):
                            "closed after N s" or "still open after SECS s"
        flood [N]           N connections at once, held 2 s: "refused R of N" (closed by the
                            server before they sent anything)
"""
import os
import select
import socket
import ssl
import sys
import time


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def frame(kind, payload):
    return bytes([kind]) + uvarint(len(payload)) + payload


def http_status(sock, timeout=10):
    """The status code the server answers with, or None when it closes without one."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1."):
        return int(parts[1])
    return None


def http_send(host, port, payload):
    with socket.create_connection((host, port), timeout=10) as s:
        try:
            s.sendall(payload)
        except OSError:
            pass  # the server may close while we still send a huge header: that is an answer
        code = http_status(s)
    return "status %d" % code if code else "closed"


def http_main(args):
    host, port, mode = args[0], int(args[1]), args[2]
    arg = args[3] if len(args) > 3 else None
    if mode == "bigheader":
        n = int(arg or 65536)
        print(http_send(host, port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                        b"a" * n + b"\r\n\r\n"))
    elif mode == "longline":
        n = int(arg or 65536)
        print(http_send(host, port, b"GET /" + b"a" * n + b" HTTP/1.1\r\nHost: x\r\n\r\n"))
    elif mode == "garbage":
        print(http_send(host, port, b"\x16\x03\x01" + os.urandom(4096) + b"\r\n\r\n"))
    elif mode == "method":
        print(http_send(host, port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
    elif mode == "slowloris":
        limit = float(arg or 30)
        start = time.monotonic()
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while time.monotonic() - start < limit:
                readable, _, _ = select.select([s], [], [], 1.0)
                if readable:
                    try:
                        if not s.recv(4096):
                            break
                    except OSError:
                        break
                    # an answer (408) is fine too: read on until it closes
                    continue
                try:
                    s.send(b"a")
                except OSError:
                    break
            took = time.monotonic() - start
        if took < limit:
            print("closed after %.0f s" % took)
        else:
            print("still open after %.0f s" % limit)
    elif mode == "flood":
        n = int(arg or 200)
        socks = []
        for _ in range(n):
            try:
                socks.append(socket.create_connection((host, port), timeout=5))
            except OSError:
                pass
        time.sleep(2)
        refused = n - len(socks)
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    refused += 1
            except BlockingIOError:
                pass
            except OSError:
                refused += 1
            s.close()
        print("refused %d of %d" % (refused, n))
    else:
        sys.exit("unknown mode " + mode)


def main():
    if sys.argv[1] == "http":
        http_main(sys.argv[2:])
        return
    host, port, ca, cert, key, node = sys.argv[1:7]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.check_hostname = False
    out = frame(16, b"\x01" + uvarint(len(node)) + node.encode() + uvarint(1) + uvarint(0))
    for spec in sys.argv[7:]:
        kind, _, arg = spec.partition(":")
        if kind == "rawhex":
            out += bytes.fromhex(arg)
        else:
            out += frame({"catalog": 1, "report": 2}[kind], open(arg, "rb").read())
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(out)
                data = b""
                while True:
                    try:
                        chunk = tls.recv(65536)
                    except (ssl.SSLError, OSError):
                        break
                    if not chunk:
                        break
                    data += chunk
        except ssl.SSLError as e:
            print("handshake failed:", e.reason)
            return
    pos = 0
    while pos < len(data):
        kind = data[pos]
        length, p = read_uvarint(data, pos + 1)
        payload = data[p:p + length]
        pos = p + length
        if kind == 19:
            seq, q = read_uvarint(payload, 1)
            n, q = read_uvarint(payload, q)
            print("reject", seq, payload[q:q + n].decode())
        else:
            print({17: "welcome", 18: "ack"}.get(kind, "kind%d" % kind))


main()
