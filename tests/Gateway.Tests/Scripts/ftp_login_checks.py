#!/usr/bin/env python3
"""FTP login checks with Python's ftplib and raw sockets, one per invocation: lockouts, timing, the login queue.

usage: ftp_login_checks.py HOST PORT CHECK [RPC_PORT]   -- prints "ok CHECK" (and what it measured) and exits 0,
                                                           or fails with a traceback.
Accounts the gateway under test must have: alice / alice-pw, bob / bob-pw; anonymous logins allowed. Each check
connects from loopback addresses of its own (127.0.0.x), so per-address lockouts never cross checks.
"""
import ftplib
import json
import socket
import statistics
import struct
import sys
import time

from ftp_common import expect_closed, expect_error  # beside this script

HOST, PORT, CHECK = sys.argv[1], int(sys.argv[2]), sys.argv[3]
RPC_PORT = int(sys.argv[4]) if len(sys.argv) > 4 else None


def connect(source, timeout=20):
    ftp = ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=timeout, source_address=(source, 0))
    return ftp


def check_lockout_survives_other_logins():
    """Twelve wrong passwords for alice from one address, with successful logins of other accounts (anonymous,
    bob) between every two of them, lock the address out: nobody's success clears the address's failures."""
    attacker = "127.0.0.5"
    guesses = 0
    ftp = None
    while guesses < 12:
        ftp = ftp or connect(attacker)
        try:
            for _ in range(2):
                ftp.sendcmd("USER alice")
                guesses += 1
                try:
                    ftp.sendcmd("PASS wrong")
                    raise AssertionError("a wrong password was accepted")
                except ftplib.error_perm as e:
                    assert str(e).startswith("530"), e
            for user, password in (("anonymous", "a@b"), ("bob", "bob-pw")):
                ftp.sendcmd("USER " + user)
                ftp.sendcmd("PASS " + password)  # 230 until the lockout; then 530 for them too
        except ftplib.Error as e:
            if not str(e).startswith(("421", "530")):
                raise
            ftp.close()  # the connection's own failure limit (421), or the lockout: go on from a new one
            ftp = None
    if ftp:
        ftp.close()
    ftp = connect(attacker)
    ftp.sendcmd("USER alice")
    reply = expect_error("530", ftp.sendcmd, "PASS alice-pw")  # the right password, refused: locked out
    ftp.close()
    print(f"after {guesses} wrong guesses mixed with other accounts' logins, alice's own password: {reply}")


def check_connection_failures_survive_anonymous():
    """On one connection, anonymous logins between alice's wrong passwords do not reset its failure count:
    the third wrong password closes it (421)."""
    ftp = connect("127.0.0.6")
    replies = []
    for attempt in range(3):
        ftp.sendcmd("USER alice")
        try:
            ftp.sendcmd("PASS wrong")
        except ftplib.Error as e:
            replies.append(str(e)[:3])
        if attempt < 2:
            ftp.sendcmd("USER anonymous")
            assert ftp.sendcmd("PASS a@b").startswith("230")
    assert replies == ["530", "530", "421"], replies
    expect_closed(ftp, "after three failed logins")


def check_cache_then_wrong_password():
    """alice logs in on two connections (the second from the login cache), then a wrong password is refused."""
    for _ in range(2):
        ftp = connect("127.0.0.8")
        ftp.login("alice", "alice-pw")
        ftp.quit()
    ftp = connect("127.0.0.8")
    ftp.sendcmd("USER alice")
    expect_error("530", ftp.sendcmd, "PASS alice-pw-not")
    ftp.close()


def time_wrong_password(user, source):
    ftp = connect(source, timeout=60)
    ftp.sendcmd("USER " + user)
    started = time.perf_counter()
    try:
        ftp.sendcmd("PASS wrong")
        raise AssertionError("a wrong password was accepted")
    except ftplib.Error as e:
        assert str(e).startswith("530"), e
    elapsed = time.perf_counter() - started
    ftp.close()
    return elapsed


def check_same_time_for_missing_user():
    """A wrong password takes as long for a user that does not exist as for one that does (medians of eight each,
    taken in the order ABBA so that a change in the machine's load falls on both alike, within 25 % of each other):
    the reply time tells nothing about which names exist."""
    times = {"alice": [], "nobody-here": []}
    for i in range(8):
        for user in ("alice", "nobody-here") if i % 2 == 0 else ("nobody-here", "alice"):
            times[user].append(time_wrong_password(user, "127.0.0.9"))
    existing, missing = times["alice"], times["nobody-here"]
    a, b = statistics.median(existing), statistics.median(missing)
    print(f"wrong password, median of {len(existing)}: existing user {a:.3f} s, missing user {b:.3f} s "
          f"(existing {', '.join(f'{t:.3f}' for t in existing)}; missing {', '.join(f'{t:.3f}' for t in missing)})")
    assert abs(a - b) <= 0.25 * max(a, b), f"existing {a:.3f} s vs missing {b:.3f} s"


def check_queue_full_421():
    """With one verification at a time and no queue, a second PASS while the first is hashed gets 421 at once."""
    first = socket.create_connection((HOST, PORT), timeout=60, source_address=("127.0.0.10", 0))
    first.sendall(b"USER alice\r\nPASS wrong\r\n")
    reader = first.makefile("rb")
    assert reader.readline().startswith(b"220")
    assert reader.readline().startswith(b"331")
    time.sleep(0.2)  # the first PASS is being hashed (it takes seconds here)
    second = connect("127.0.0.10")
    second.sendcmd("USER bob")
    reply = expect_error("421", second.sendcmd, "PASS bob-pw")
    assert not second.sock.recv(1), "the connection stays open after 421"
    second.close()
    assert reader.readline().startswith(b"530"), "the first PASS is answered as usual"
    first.close()
    print(reply)


def rpc_ping(sock):
    body = json.dumps({"in": "ping", "params": "storm"}).encode()
    started = time.perf_counter()
    sock.sendall(struct.pack("<I", len(body)) + body)
    header = recv_exactly(sock, 4)
    reply = json.loads(recv_exactly(sock, struct.unpack("<I", header)[0]))
    assert reply.get("out") == "pong", reply
    return time.perf_counter() - started


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the RPC connection closed"
        data += chunk
    return data


def check_storm_ping():
    """40 PASS with an expensive hash from 8 addresses, all waiting at once; meanwhile RPC pings (on a connection
    opened before, and on new ones) answer within 2 s each. The FTP connections are closed at the end."""
    assert RPC_PORT, "needs the RPC port"
    rpc = socket.create_connection((HOST, RPC_PORT), timeout=30)
    rpc_ping(rpc)  # connected and served before the storm
    storm = []
    try:
        for i in range(40):
            s = socket.create_connection((HOST, PORT), timeout=30, source_address=(f"127.0.1.{i % 8 + 1}", 0))
            s.sendall(b"USER alice\r\nPASS wrong\r\n")
            storm.append(s)
        time.sleep(1)  # the PASS lines have arrived and are being hashed or waiting
        latencies = []
        for _ in range(3):
            try:
                latencies.append(rpc_ping(rpc))
            except socket.timeout:
                latencies.append(float("inf"))
        for _ in range(2):
            try:
                started = time.perf_counter()
                fresh = socket.create_connection((HOST, RPC_PORT), timeout=30)
                rpc_ping(fresh)
                latencies.append(time.perf_counter() - started)
                fresh.close()
            except socket.timeout:
                latencies.append(float("inf"))
    finally:
        for s in storm:
            s.close()
        rpc.close()
    print("RPC ping during the login storm (s): " + ", ".join(f"{t:.3f}" for t in latencies))
    assert max(latencies) < 2, latencies


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}

if __name__ == "__main__":
    CHECKS[CHECK]()
    print("ok", CHECK)
