#!/usr/bin/env python3
"""A hand-made uplink client for the collector's refusal tests: mutual TLS with the given
certificate, a hello, then frames given on the command line, and it prints the frames the
collector answers with (kind, and for reject its reason) until the collector closes.

  hostile_client.py HOST PORT CA CERT KEY NODE FRAME...
  FRAME: report:<file with a signed report's bytes> | catalog:<file> | rawhex:<hex bytes>
"""
import socket
import ssl
import sys


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


def main():
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
