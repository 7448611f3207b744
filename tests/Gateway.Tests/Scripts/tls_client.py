"""A TLS client for the echo and RPC listeners: python3 tls_client.py HOST PORT CAFILE echo|rpc [TEXT]

Verifies the server's certificate against CAFILE (the test's own self-signed certificate) and its address,
sends TEXT (echo: the bytes; rpc: a ping with TEXT as params, the classic example's frame), and prints one
JSON line: the TLS version, the certificate's subject and what came back. Exits non-zero on any failure.
"""
import json
import socket
import ssl
import struct
import sys

from rpc_seed_client import recv_exactly  # the classic client's framing, beside this script

host, port, cafile, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
text = sys.argv[5] if len(sys.argv) > 5 else "hello over tls"
context = ssl.create_default_context(cafile=cafile)
with socket.create_connection((host, port), timeout=20) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
    subject = dict(part[0] for part in tls.getpeercert()["subject"])
    if mode == "echo":
        data = text.encode()
        tls.sendall(data)
        back = b""
        while len(back) < len(data):
            chunk = tls.recv(65536)
            if not chunk:
                break
            back += chunk
        answer = back.decode()
    else:
        body = json.dumps({"in": "ping", "params": text, "id": 1}).encode()
        tls.sendall(struct.pack("<I", len(body)) + body)
        (length,) = struct.unpack("<I", recv_exactly(tls, 4))
        answer = json.loads(recv_exactly(tls, length))
    print(json.dumps({"version": tls.version(), "subject": subject.get("commonName"), "answer": answer}))
