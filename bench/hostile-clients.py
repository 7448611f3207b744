#!/usr/bin/env python3
"""Hostile clients for the soak (bench/soak --hostile): a bounded mix of attacks on the gateway's ports for a while.

usage: bench/hostile-clients.py --ftp-port P --rpc-port P --echo-port P --seconds S [options]

Every activity runs in its own threads until the deadline (or SIGTERM/SIGINT), paced by a rate or a fixed count of
connections, and every wait on the server has a bound. Server errors are what it is here for: a refused, reset or
silent connection is counted, never fatal. At the end it prints one JSON object on stdout (the summary below) and
exits 0; 2 means bad arguments.

Activities (--mix, comma-separated; default all):
  stall    --stall-readers N (4) FTP sessions from 127.0.0.6, each in turn: log in as --user, TYPE I, EPSV, a data
           socket with SO_RCVBUF 4096, RETR --big-file, read 1,000 bytes, stop reading and wait (at most
           3 x --data-timeout + 30 s) for the final reply the server sends when it ends the stalled download (426),
           then close both and start again.
  paths    FTP garbage paths from 127.0.0.7 as --user, --paths-rate commands/s (2): RETR of --fifo (550 at once),
           RETR/STOR/MKD of names with control characters, NUL bytes, non-UTF-8 bytes, ../../etc/passwd, names over
           255 bytes, a line over 4 KiB, a 1,500-level path; REST 2^63-1000 then STOR (refused: 550 with atomic
           uploads, else 554) and then RETR. Every reply is checked against the codes a hardened server gives; with
           --ftp-root, a reply that shows that path (the server's file system layout) is unexpected too.
  hoard    --hoarders N (24) anonymous FTP sessions from --hoard-sources addresses (2: 127.0.0.70, .71) that send
           EPSV and idle, sending it again every --data-timeout + 5 s (the server closes a pending passive port
           after its data timeout); 229 or 425 (the per-address cap) are both expected.
  storm    FTP login storm from 127.0.0.10-127.0.0.60, --storm-concurrency (40) connections at once, at most
           --storm-rate (10) new ones per second: three wrong passwords for --user (530, 530, then 421 and a close),
           and every third connection of an address an anonymous login (230) in between.
  work     RPC `work` with params 10000000 from 127.0.0.8, the socket closed at once (a FIN, or a reset every other
           time), --work-rate per second (1).
  garbage  one connection at a time from 127.0.0.9, --garbage-rate per second (4), in turn: a 4 GiB RPC length
           header, an HTTP request on RPC, random bytes on RPC, a frame of bad JSON, an HTTP request on FTP,
           random bytes on FTP, random bytes on echo (which must come back unchanged).

Summary: {"seconds", "mix", "unexpected": total, "activities": {name: {"counts", "codes", "errors", "unexpected",
"examples", and timings as {"n", "min", "mean", "p50", "p99", "max"}}}}. "codes" counts replies by kind (FTP code,
RPC out/error code, or an outcome such as "closed"); "errors" counts connection failures by exception type;
"unexpected" counts replies a hardened server does not give (a FIFO read that does not answer 550, a stalled
download never ended, an over-long RPC header answered with anything but too_large, echo bytes changed ...), with
up to five examples each.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
STOP = threading.Event()
MAX_ITERATIONS = 10_000_000  # every loop is bounded in count as well as by the deadline


class Stopped(Exception):
    """The run is over: the deadline passed or a signal came. Not counted."""


class Unexpected(Exception):
    """The server's answer is outside what the protocol allows here (counted by the caller)."""


class Timing:
    """Seconds observed for one kind of wait; keeps the first 20,000 for percentiles."""

    def __init__(self):
        self.values = []
        self.n = 0
        self.total = 0.0
        self.low = None
        self.high = None

    def add(self, seconds):
        self.n += 1
        self.total += seconds
        self.low = seconds if self.low is None else min(self.low, seconds)
        self.high = seconds if self.high is None else max(self.high, seconds)
        if len(self.values) < 20_000:
            self.values.append(seconds)

    def summary(self):
        if not self.n:
            return {"n": 0}
        ordered = sorted(self.values)
        at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
        return {"n": self.n, "min": round(self.low, 3), "mean": round(self.total / self.n, 3),
                "p50": round(at(0.50), 3), "p99": round(at(0.99), 3), "max": round(self.high, 3)}


class Tally:
    """What one activity did and got; shared by its threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts, self.codes, self.errors = {}, {}, {}
        self.unexpected = 0
        self.examples = []
        self.timings = {}

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def code(self, key):
        with self.lock:
            self.codes[key] = self.codes.get(key, 0) + 1

    def error(self, e):
        with self.lock:
            name = type(e).__name__
            self.errors[name] = self.errors.get(name, 0) + 1

    def surprise(self, text):
        with self.lock:
            self.unexpected += 1
            if len(self.examples) < 5:
                self.examples.append(text[:300])

    def time(self, key, seconds):
        with self.lock:
            self.timings.setdefault(key, Timing()).add(seconds)

    def summary(self):
        with self.lock:
            result = {"counts": dict(self.counts), "codes": dict(self.codes), "errors": dict(self.errors),
                      "unexpected": self.unexpected, "examples": list(self.examples)}
            for key, timing in self.timings.items():
                result[key] = timing.summary()
            return result


class Pacer:
    """At most `rate` starts per second over all the threads that share it."""

    def __init__(self, rate):
        self.interval = 1.0 / rate
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self):
        with self.lock:
            slot = max(self.next, time.monotonic())
            self.next = slot + self.interval
        delay = slot - time.monotonic()
        if (STOP.wait(delay) if delay > 0 else STOP.is_set()):
            raise Stopped()


def pause(seconds):
    if STOP.wait(seconds):
        raise Stopped()


def connect(port, source, timeout=10.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect, so the window is small
        s.bind((source, 0))
        s.settimeout(timeout)
        s.connect((HOST, port))
        return s
    except BaseException:
        s.close()
        raise


def receive(sock, deadline, limit=65536):
    """Up to `limit` bytes, or b"" at the end of the stream; TimeoutError at the deadline; Stopped on stop."""
    while True:
        if STOP.is_set():
            raise Stopped()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        sock.settimeout(min(remaining, 1.0))
        try:
            return sock.recv(limit)
        except socket.timeout:
            continue


def reset_on_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FtpControl:
    """A raw FTP control connection: sends any bytes (ftplib refuses some) and reads replies with a bound."""

    def __init__(self, port, source, timeout=10.0):
        self.sock = connect(port, source, timeout)
        self.buffer = b""
        self.text = ""
        self.code = 0
        try:
            if self.reply(15) != 220:
                raise Unexpected(f"greeting {self.code}: {self.text}")
        except BaseException:
            self.sock.close()
            raise

    def line(self, deadline):
        while b"\n" not in self.buffer:
            chunk = receive(self.sock, deadline, 4096)
            if not chunk:
                raise EOFError("the server closed the control connection")
            self.buffer += chunk
            if len(self.buffer) > 65536:
                raise Unexpected("a reply line over 64 KiB")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def reply(self, timeout=15.0):
        """The next reply's code (a multi-line reply read to its end); its last line in self.text."""
        deadline = time.monotonic() + timeout
        first = self.line(deadline)
        if len(first) < 4 or not first[:3].isdigit():
            raise Unexpected(f"not a reply line: {first[:80]!r}")
        last = first
        if first[3:4] == b"-":
            for _ in range(10_000):
                last = self.line(deadline)
                if last[:3] == first[:3] and last[3:4] == b" ":
                    break
        self.text = last.decode("utf-8", "replace")
        self.code = int(first[:3])
        return self.code

    def command(self, line, timeout=15.0):
        self.sock.sendall(line + b"\r\n")
        return self.reply(timeout)

    def login(self, user, password):
        code = self.command(b"USER " + user.encode())
        if code == 331:
            code = self.command(b"PASS " + password.encode(), timeout=60)
        return code

    def passive(self):
        """EPSV: (its code, the data port or None)."""
        code = self.command(b"EPSV")
        if code != 229:
            return code, None
        match = re.search(r"\|\|\|(\d+)\|", self.text)
        if not match:
            raise Unexpected(f"229 without a port: {self.text}")
        return code, int(match.group(1))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def stall_reader(args, tally):
    for _ in range(MAX_ITERATIONS):
        control = data = None
        try:
            control = FtpControl(args.ftp_port, "127.0.0.6")
            if control.login(args.user, args.password) != 230:
                tally.surprise(f"login as {args.user}: {control.code} {control.text}")
                pause(5)
                continue
            control.command(b"TYPE I")
            code, port = control.passive()
            if port is None:
                tally.code(f"epsv {code}")
                pause(5)
                continue
            data = connect(port, "127.0.0.6", rcvbuf=4096)
            code = control.command(b"RETR " + args.big_file.encode())
            if code != 150:
                tally.surprise(f"RETR {args.big_file}: {code} {control.text}")
                continue
            got = 0
            deadline = time.monotonic() + 30
            while got < 1000:
                chunk = receive(data, deadline, 1000 - got)
                if not chunk:
                    break
                got += len(chunk)
            tally.count("bytes read before stalling", got)
            stalled = time.monotonic()
            code = control.reply(3 * args.data_timeout + 30)  # we read no more: the server must end it
            tally.time("stall_to_final_reply_s", time.monotonic() - stalled)
            tally.code(str(code))
            tally.count("stalled downloads")
            if code != 426:
                tally.surprise(f"stalled RETR ended with {code} {control.text}")
        except Stopped:
            return
        except TimeoutError as e:
            tally.surprise(f"stalled RETR: no final reply within {3 * args.data_timeout + 30} s")
            tally.error(e)
        except Unexpected as e:
            tally.surprise(str(e))
        except (OSError, EOFError) as e:
            tally.error(e)
            try:
                pause(1)
            except Stopped:
                return
        finally:
            for s in (data, control):
                if s is not None:
                    s.close()


LONG_NAME = "n" * 300
PATH_OPS = [
    # (name, command, needs a data connection, codes a hardened server gives)
    ("retr fifo", b"RETR {fifo}", True, {550}),
    ("retr ../../etc/passwd", b"RETR ../../etc/passwd", True, {550}),
    ("retr /../../../etc/shadow", b"RETR /../../../etc/shadow", True, {550}),
    ("stor control chars", b"STOR bad\x01name\x7f", True, {553}),
    ("stor escape sequence", b"STOR bad\x1b[2Jname", True, {553}),
    ("stor nul", b"STOR bad\x00name", True, {553}),
    ("mkd control chars", b"MKD bad\x07dir", False, {553}),
    ("mkd nul", b"MKD bad\x00dir", False, {553}),
    ("retr nul", b"RETR {fifo}\x00.txt", True, {550}),
    ("retr non-utf8", b"RETR \xff\xfe\xfd", True, {501, 550}),
    ("mkd non-utf8", b"MKD \xc3\x28", False, {257, 501, 550, 553}),
    ("retr name over 255 bytes", b"RETR " + LONG_NAME.encode(), True, {550}),
    ("mkd name over 255 bytes", b"MKD " + LONG_NAME.encode(), False, {550, 553}),
    ("stor name over 255 bytes", b"STOR " + LONG_NAME.encode(), True, {550, 553}),
    ("line over 4 KiB", b"RETR " + b"z" * 5000, False, {500}),
    ("mkd 1500 levels", b"MKD hostile-deep/" + b"d/" * 1500, False, {257, 550}),
    ("rest 2^63-1000 stor", b"STOR hostile-rest.bin", True, {550, 554}),
    ("rest 2^63-1000 retr", b"RETR {big}", True, {554}),
]


def paths(args, tally):
    pacer = Pacer(args.paths_rate)
    control = None
    root = args.ftp_root.encode() if args.ftp_root else None
    for i in range(MAX_ITERATIONS):
        name, template, needs_data, expected = PATH_OPS[i % len(PATH_OPS)]
        line = template.replace(b"{fifo}", args.fifo.encode()).replace(b"{big}", args.big_file.encode())
        data = None
        try:
            pacer.wait()
            if control is None:
                control = FtpControl(args.ftp_port, "127.0.0.7")
                if control.login(args.user, args.password) != 230:
                    raise Unexpected(f"login as {args.user}: {control.code} {control.text}")
                control.command(b"TYPE I")
            if needs_data:
                code, port = control.passive()
                if port is None:
                    tally.code(f"epsv {code}")
                    continue
                data = connect(port, "127.0.0.7")
            if name.startswith("rest "):
                control.command(b"REST 9223372036854774807")
            asked = time.monotonic()
            code = control.command(line)
            if name == "retr fifo":
                tally.time("fifo_reply_s", time.monotonic() - asked)
            final = None
            if code == 150 and data is not None:
                if line.startswith(b"STOR"):
                    data.sendall(b"hostile\n")
                else:
                    deadline = time.monotonic() + 10
                    for _ in range(100):
                        if not receive(data, deadline):
                            break
                data.close()
                data = None
                final = control.reply(3 * args.data_timeout + 30)
            shown = f"{code}" + (f"+{final}" if final is not None else "")
            tally.code(f"{name}: {shown}")
            tally.count("commands")
            if code not in expected:
                tally.surprise(f"{name}: {shown} {control.text}")
            elif root and root in control.text.encode():
                tally.surprise(f"{name}: the reply shows the server's path: {code} {control.text}")
            if final == 226 and line.startswith(b"STOR"):
                tally.count("stored (deleted again)")
                control.command(b"DELE " + line[5:])
        except Stopped:
            break
        except Unexpected as e:
            tally.surprise(f"{name}: {e}")
            control = close_quietly(control)
        except (OSError, EOFError) as e:
            tally.error(e)
            control = close_quietly(control)
        finally:
            if data is not None:
                data.close()
    close_quietly(control)


def close_quietly(control):
    if control is not None:
        control.close()
    return None


def hoarder(args, tally, source):
    for _ in range(MAX_ITERATIONS):
        control = None
        try:
            control = FtpControl(args.ftp_port, source)
            if control.login("anonymous", "hoarder@example.org") != 230:
                raise Unexpected(f"anonymous login: {control.code} {control.text}")
            tally.count("sessions")
            for _ in range(MAX_ITERATIONS):
                code = control.command(b"EPSV")
                tally.code(f"epsv {code}")
                if code not in (229, 425):
                    tally.surprise(f"EPSV: {code} {control.text}")
                pause(args.data_timeout + 5)
        except Stopped:
            return
        except Unexpected as e:
            tally.surprise(str(e))
        except (OSError, EOFError) as e:
            tally.error(e)
        finally:
            close_quietly(control)
        try:
            pause(5)
        except Stopped:
            return


STORM_SOURCES = [f"127.0.0.{n}" for n in range(10, 61)]


class StormPlan:
    """Which address the next storm connection comes from, and whether it is the anonymous one in between."""

    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0

    def next(self):
        with self.lock:
            n = self.n
            self.n += 1
        source = STORM_SOURCES[n % len(STORM_SOURCES)]
        round_of_address = n // len(STORM_SOURCES)
        return source, round_of_address % 3 == 2


def storm(args, tally, pacer, plan):
    for _ in range(MAX_ITERATIONS):
        control = None
        try:
            pacer.wait()
            source, anonymous = plan.next()
            control = FtpControl(args.ftp_port, source)
            tally.count("connections")
            if anonymous:
                started = time.monotonic()
                code = control.login("anonymous", "storm@example.org")
                tally.time("anonymous_login_s", time.monotonic() - started)
                tally.code(f"anonymous {code}")
                # 530 too: an address the storm has locked out may not log in at all, anonymously included.
                if code not in (230, 530):
                    tally.surprise(f"anonymous login from {source}: {code} {control.text}")
                control.command(b"QUIT")
                continue
            for attempt in range(3):
                if control.command(b"USER " + args.user.encode()) != 331:
                    tally.surprise(f"USER: {control.code} {control.text}")
                    break
                started = time.monotonic()
                code = control.command(b"PASS wrong-" + os.urandom(6).hex().encode(), timeout=120)
                tally.time("wrong_password_reply_s", time.monotonic() - started)
                tally.code(f"wrong password {code}")
                tally.count("wrong passwords")
                if code not in (530, 421):
                    tally.surprise(f"wrong password from {source}: {code} {control.text}")
                if code != 530:
                    break
        except Stopped:
            return
        except Unexpected as e:
            tally.surprise(str(e))
        except (OSError, EOFError) as e:
            tally.error(e)
        finally:
            close_quietly(control)


def frame(body):
    return struct.pack("<I", len(body)) + body


def abandoned_work(args, tally):
    pacer = Pacer(args.work_rate)
    request = frame(json.dumps({"in": "work", "params": 10_000_000}).encode())
    for i in range(MAX_ITERATIONS):
        s = None
        try:
            pacer.wait()
            s = connect(args.rpc_port, "127.0.0.8")
            s.sendall(request)
            if i % 2:
                reset_on_close(s)
                tally.count("sent, then reset")
            else:
                tally.count("sent, then closed")
        except Stopped:
            return
        except OSError as e:
            tally.error(e)
        finally:
            if s is not None:
                s.close()


def read_rpc_reply(s, deadline):
    """The first reply frame's out word or error code, or an outcome when there is none."""
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack("<I", data[:4])[0]:
        chunk = receive(s, deadline)
        if not chunk:
            return "closed" if not data else "closed mid-reply"
        data += chunk
        if len(data) > 1 << 20:
            return "reply over 1 MiB"
    length = struct.unpack("<I", data[:4])[0]
    try:
        reply = json.loads(data[4:4 + length])
    except ValueError:
        return "reply not JSON"
    if reply.get("out") == "error":
        return reply.get("result", {}).get("code", "error")
    return reply.get("out", "?")


def count_ftp_replies(s, deadline, wanted):
    """Reads reply lines until `wanted` final lines, the end of the stream or the deadline; their classes."""
    buffer, classes = b"", []
    try:
        while len(classes) < wanted:
            chunk = receive(s, deadline)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            classes += [line[:1].decode("ascii", "replace") + "xx" for line in lines if line[:3].isdigit() and line[3:4] != b"-"]
    except TimeoutError:
        pass
    return classes


HTTP_REQUEST = b"GET /admin/connections HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: hostile\r\n\r\n"


def garbage(args, tally):
    pacer = Pacer(args.garbage_rate)
    kinds = ["rpc 4 GiB header", "rpc http", "rpc random", "rpc bad json", "ftp http", "ftp random", "echo random"]
    for i in range(MAX_ITERATIONS):
        kind = kinds[i % len(kinds)]
        s = None
        try:
            pacer.wait()
            deadline = time.monotonic() + 10
            if kind.startswith("rpc"):
                s = connect(args.rpc_port, "127.0.0.9")
                payload = {
                    "rpc 4 GiB header": b"\xff\xff\xff\xff" + os.urandom(16),
                    "rpc http": HTTP_REQUEST,
                    "rpc random": os.urandom(random.randint(1, 2048)),
                    "rpc bad json": frame(b"{\"in\": \"ping\", " + os.urandom(32)),
                }[kind]
                s.sendall(payload)
                try:
                    outcome = read_rpc_reply(s, time.monotonic() + (10 if kind != "rpc random" else 2))
                except TimeoutError:
                    outcome = "no reply in time"
                tally.code(f"{kind}: {outcome}")
                wanted = {"rpc 4 GiB header": {"too_large"}, "rpc http": {"too_large"}, "rpc bad json": {"bad_json"}}.get(kind)
                if wanted and outcome not in wanted:
                    tally.surprise(f"{kind}: {outcome}")
            elif kind.startswith("ftp"):
                s = connect(args.ftp_port, "127.0.0.9")
                payload = HTTP_REQUEST if kind == "ftp http" else os.urandom(random.randint(1, 2048)) + b"\r\n"
                s.sendall(payload)
                lines = payload.count(b"\n")
                classes = count_ftp_replies(s, deadline, 1 + lines)  # the greeting, then one per line
                tally.code(f"{kind}: {'+'.join(sorted(set(classes))) or 'nothing in 10 s'}")
                if kind == "ftp http" and classes and (classes[0] != "2xx" or any(c not in ("2xx", "5xx") for c in classes)):
                    tally.surprise(f"{kind}: replies {classes}")
            else:
                s = connect(args.echo_port, "127.0.0.9")
                payload = os.urandom(random.randint(1, 65536))
                s.sendall(payload)
                back = b""
                try:
                    while len(back) < len(payload):
                        chunk = receive(s, deadline)
                        if not chunk:
                            break
                        back += chunk
                except TimeoutError:
                    pass
                same = back == payload
                tally.code(f"{kind}: {'echoed' if same else 'different'}")
                if not same:
                    tally.surprise(f"{kind}: {len(back)} bytes back for {len(payload)}, or different ones")
            tally.count("connections")
        except Stopped:
            return
        except (OSError, EOFError) as e:
            tally.error(e)
        finally:
            if s is not None:
                s.close()


ACTIVITIES = ["stall", "paths", "hoard", "storm", "work", "garbage"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ftp-port", type=int, required=True)
    parser.add_argument("--rpc-port", type=int, required=True)
    parser.add_argument("--echo-port", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--user", default="hostile")
    parser.add_argument("--password", default="hostile-pw")
    parser.add_argument("--big-file", default="big.bin", help="a large file in --user's home")
    parser.add_argument("--fifo", default="fifo", help="a FIFO in --user's home")
    parser.add_argument("--ftp-root", default=None, help="the server's FTP root: no reply may show it")
    parser.add_argument("--data-timeout", type=float, default=30, help="the server's FTP data timeout, in seconds")
    parser.add_argument("--mix", default=",".join(ACTIVITIES))
    parser.add_argument("--stall-readers", type=int, default=4)
    parser.add_argument("--paths-rate", type=float, default=2)
    parser.add_argument("--hoarders", type=int, default=24)
    parser.add_argument("--hoard-sources", type=int, default=2)
    parser.add_argument("--storm-concurrency", type=int, default=40)
    parser.add_argument("--storm-rate", type=float, default=10)
    parser.add_argument("--work-rate", type=float, default=1)
    parser.add_argument("--garbage-rate", type=float, default=4)
    args = parser.parse_args()
    mix = [m for m in args.mix.split(",") if m]
    unknown = [m for m in mix if m not in ACTIVITIES]
    bounds = [(args.stall_readers, 0, 50), (args.hoarders, 0, 200), (args.hoard_sources, 1, 50), (args.storm_concurrency, 1, 200)]
    rates = [args.paths_rate, args.storm_rate, args.work_rate, args.garbage_rate]
    if unknown or args.seconds <= 0 or any(not lo <= v <= hi for v, lo, hi in bounds) or any(not 0 < r <= 100 for r in rates):
        parser.error(f"unknown activities {unknown}" if unknown else "counts and rates out of range (rates 0-100/s, concurrency 1-200)")

    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    tallies = {name: Tally() for name in mix}
    threads = []

    def start(name, target, *extra):
        t = threading.Thread(target=target, args=(args, tallies[name], *extra), name=name, daemon=True)
        threads.append(t)
        t.start()

    if "stall" in tallies:
        for _ in range(args.stall_readers):
            start("stall", stall_reader)
    if "paths" in tallies:
        start("paths", paths)
    if "hoard" in tallies:
        for i in range(args.hoarders):
            start("hoard", hoarder, f"127.0.0.{70 + i % args.hoard_sources}")
    if "storm" in tallies:
        pacer, plan = Pacer(args.storm_rate), StormPlan()
        for _ in range(args.storm_concurrency):
            start("storm", storm, pacer, plan)
    if "work" in tallies:
        start("work", abandoned_work)
    if "garbage" in tallies:
        start("garbage", garbage)

    started = time.monotonic()
    deadline = started + args.seconds
    next_progress = started + 60
    while not STOP.is_set() and time.monotonic() < deadline:
        STOP.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        if time.monotonic() >= next_progress and not STOP.is_set():
            next_progress += 60
            line = ", ".join(f"{name} {sum(t.counts.values()) if name != 'stall' else t.counts.get('stalled downloads', 0)}"
                             f"/{sum(t.errors.values())}e/{t.unexpected}u" for name, t in tallies.items())
            print(f"hostile {time.monotonic() - started:.0f} s: {line}", file=sys.stderr, flush=True)
    STOP.set()
    # Every wait inside checks STOP at least once a second; a stuck thread is reported, not waited for.
    join_deadline = time.monotonic() + 30
    for t in threads:
        t.join(max(0.0, join_deadline - time.monotonic()))
    still = sorted({t.name for t in threads if t.is_alive()})
    summary = {"seconds": round(time.monotonic() - started, 1), "mix": mix,
               "unexpected": sum(t.unexpected for t in tallies.values()),
               "activities": {name: t.summary() for name, t in tallies.items()}}
    if still:
        summary["threads_not_ended"] = still
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
