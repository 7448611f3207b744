#!/usr/bin/env python3
"""The classic length-prefixed JSON RPC client, as the seeds wrote it: struct.pack("<I") + json over a socket.

usage: rpc_seed_client.py HOST PORT [COUNT]   -- sends COUNT pings on one connection, prints "out result" per reply
"""
import json
import socket
import struct
import sys


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("server closed the connection")
        data += chunk
    return data


def rpc(sock, method, params):
    request = json.dumps({"in": method, "params": params}).encode("utf-8")
    sock.sendall(struct.pack("<I", len(request)) + request)
    (length,) = struct.unpack("<I", recv_exactly(sock, 4))
    response = json.loads(recv_exactly(sock, length).decode("utf-8"))
    return response["out"], response["result"]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    with socket.create_connection((host, port), timeout=10) as sock:
        for i in range(count):
            out, result = rpc(sock, "ping", "ireader %d" % i)
            print(out, result)


if __name__ == "__main__":
    main()
