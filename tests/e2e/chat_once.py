#!/usr/bin/env python3
"""One chat message through a gateway over a real WebSocket, standard library only:
   chat_once.py HOST:PORT ACCESS_TOKEN  → connects to /ws/chat/e2e, sends, waits for the ack."""

import base64
import json
import os
import socket
import struct
import sys

host, token = sys.argv[1], sys.argv[2]
addr, port = host.rsplit(":", 1)
sock = socket.create_connection((addr, int(port)), timeout=20)
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall(
    (
        f"GET /ws/chat/e2e HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: ww.chat.v1, ww.bearer.{token}\r\n\r\n"
    ).encode()
)
head = b""
while b"\r\n\r\n" not in head:
    byte = sock.recv(1)
    if not byte:
        sys.exit(f"the gateway closed the connection during the handshake: {head.decode(errors='replace')}")
    head += byte
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit(f"no upgrade: {head.decode(errors='replace')}")


def send(obj):
    data = json.dumps(obj).encode()
    mask = os.urandom(4)
    n = len(data)
    header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            sys.exit("connection closed")
        out += chunk
    return out


def frame():
    b1, b2 = recv_exact(2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(8))[0]
    payload = recv_exact(n)
    if b1 & 0x0F == 0x8:
        sys.exit(f"closed by the gateway: {payload[:2].hex()} {payload[2:].decode(errors='replace')}")
    return json.loads(payload) if b1 & 0x0F == 0x1 else None


while (f := frame()) is None or f.get("type") != "ready":
    pass
send({"type": "send", "clientMsgId": "e2e-1", "text": "hello from the e2e test"})
while True:
    f = frame()
    if f and f.get("type") == "ack" and f.get("clientMsgId") == "e2e-1":
        print(f"chat: message {f['id']} acknowledged at offset {f['offset']}")
        break
    if f and f.get("type") == "error":
        sys.exit(f"error frame: {f}")
