#!/usr/bin/env python3
"""Hostile HTTP clients against a server built on http::Server (the capacity view, gridnoded's
--web.listen-address): oversized request line and headers, garbage, another method, a
slowloris trickle, more connections than it takes, a peer hanging up mid-request; then
keep-alive and HEAD work and PATH still answers 200. One line per check; exit 1 if one failed.

  hostile_http.py HOST PORT [--path /metrics] [--request-timeout 10] [--max-connections 64]
"""
import argparse
import socket
import sys
import threading
import time

failures = []


def check(name, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + name + ("" if ok else " (" + detail + ")"), flush=True)
    if not ok:
        failures.append(name)


def connect(args, timeout=5.0):
    s = socket.create_connection((args.host, args.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_until_close(s, limit=1 << 20):
    """Everything the server sends until it closes; None if it keeps the connection open."""
    data = b""
    try:
        while len(data) < limit:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        return None
    return data


def status_of(data):
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError, AttributeError):
        return 0


def refused(args, name, payload, want):
    s = connect(args)
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = read_until_close(s)
    s.close()
    check(name + " -> %d and closed" % want,
          data is not None and status_of(data) == want and b"Connection: close" in data,
          repr(data[:200]) if data is not None else "connection left open")


def read_response(s, head=False):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    header, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in header.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if head:
        return header, rest
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return header, rest[:length]


def slowloris(args, result):
    s = connect(args, timeout=args.request_timeout + 10)
    start = time.monotonic()
    request = b"GET " + args.path.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000
    closed = False
    for i in range(len(request)):
        try:
            s.sendall(request[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.25)
        s.setblocking(False)
        try:
            if s.recv(4096) == b"":
                closed = True
                break
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed = True
            break
        finally:
            s.setblocking(True)
        if time.monotonic() - start > args.request_timeout + 8:
            break
    result.append((closed, time.monotonic() - start))
    s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--path", default="/")
    p.add_argument("--request-timeout", type=float, default=10)
    p.add_argument("--max-connections", type=int, default=64)
    args = p.parse_args()

    slow = []
    trickle = threading.Thread(target=slowloris, args=(args, slow))
    trickle.start()

    refused(args, "a 20 KB request line", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 414)
    refused(args, "a 40 KB header", b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n", 431)
    refused(args, "200 headers", b"GET / HTTP/1.1\r\n" +
            b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n", 431)
    refused(args, "garbage bytes", bytes(range(256)) * 4, 400)
    refused(args, "a TLS ClientHello on the plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 400)
    refused(args, "an absolute-form target", b"GET http://evil/ HTTP/1.1\r\n\r\n", 400)
    refused(args, "a POST with a body", b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", 405)
    refused(args, "a body on GET", b"GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", 413)

    # Peers that hang up mid-request, with a FIN and with a reset.
    for reset in (False, True):
        s = connect(args)
        s.sendall(b"GET " + args.path.encode() + b" HTTP/1.1\r\nHost: half")
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()

    # More connections than the server takes: the excess is closed at once, without an answer.
    held = []
    for _ in range(args.max_connections + 20):
        held.append(connect(args, timeout=1.5))
    closed_at_once = 0
    for s in held[args.max_connections:]:
        if read_until_close(s) == b"":
            closed_at_once += 1
    check("%d connections: the excess closed at once" % len(held), closed_at_once == 20,
          "%d closed" % closed_at_once)
    for s in held:
        s.close()
    time.sleep(0.3)  # the server sees the closes

    # Keep-alive: several requests on one connection, HEAD without a body.
    s = connect(args)
    ok = True
    for _ in range(3):
        s.sendall(b"GET " + args.path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        header, body = read_response(s)
        ok = ok and header is not None and status_of(header) == 200 and len(body) > 0
    s.sendall(b"HEAD " + args.path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    header, rest = read_response(s, head=True)
    ok = ok and header is not None and status_of(header) == 200 and rest == b""
    s.sendall(b"GET " + args.path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    header, body = read_response(s)
    check("keep-alive: four requests and a HEAD on one connection",
          ok and header is not None and status_of(header) == 200)
    s.close()

    trickle.join()
    closed, took = slow[0]
    check("slowloris closed after about the request timeout (%.1f s)" % took,
          closed and took < args.request_timeout + 5, "closed=%s" % closed)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
