#!/usr/bin/env python3
"""FTP checks of what a hostile client can make the server hold (hardening round 2), one per invocation.

usage: ftp_hostile_checks.py HOST PORT CHECK ROOT  -- prints "ok CHECK" and exits 0, or fails with a traceback.
The gateway under test (FtpHostileFixture) has alice / alice-pw with her home at ROOT/alice, where the fixture
made hostile/big.bin (64 MiB, sparse), hostile/pipe (a FIFO), hostile/small.txt and a file whose name has a CR;
a 3 s idle timeout (so a 3 s data timeout), AtomicUploads false, MaxUploadBytes 1,000,000 and at most 3 pending
passive listeners per client address.
"""
import ftplib
import io
import os
import socket
import stat
import struct
import sys
import time

from ftp_common import expect_error  # beside this script

HOST, PORT, CHECK, ROOT = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
HOSTILE = os.path.join(ROOT, "alice", "hostile")


def connect(source=None):
    ftp = ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=20, source_address=source)
    ftp.login("alice", "alice-pw")
    ftp.cwd("hostile")
    return ftp


def download(ftp, name):
    got = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", got.write)
    return got.getvalue()


def epsv_port(ftp):
    return int(ftp.sendcmd("EPSV").split("|")[3])


def expect_refused_before_150(ftp, code, command, rest=None):
    """A transfer command refused with `code` before any 150 (a data connection is set up, as clients do)."""
    try:
        conn = ftp.transfercmd(command, rest=rest)
    except ftplib.error_perm as e:
        assert str(e).startswith(code), e
        return
    conn.close()
    raise AssertionError(f"{command} (REST {rest}) started; then: {ftp.getline()}")


def check_stalled_download_ends():
    # A client that reads 1,000 bytes of a 64 MiB download and stops: the send makes no progress, so the
    # transfer ends with 426 after the data timeout (3 s), the file is closed, the session goes on.
    ftp = connect()
    ftp.voidcmd("TYPE I")
    data = socket.socket()
    data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    data.connect((HOST, epsv_port(ftp)))
    ftp.putcmd("RETR big.bin")
    assert ftp.getresp().startswith("150")
    assert len(data.recv(1000)) > 0
    started = time.monotonic()
    ftp.sock.settimeout(30)
    reply = ftp.getline()
    waited = time.monotonic() - started
    assert reply.startswith("426"), reply
    assert waited < 20, f"the stalled download ended only after {waited:.1f} s"
    data.close()
    ftp.voidcmd("NOOP")
    assert download(ftp, "small.txt") == b"small\n"
    ftp.quit()


def check_fifo_refused():
    # A FIFO in the tree: refused at once (the open does not block), with and without a writer attached.
    ftp = connect()
    ftp.voidcmd("TYPE I")
    expect_error("550", download, ftp, "pipe")
    writer = os.open(os.path.join(HOSTILE, "pipe"), os.O_RDWR | os.O_NONBLOCK)  # a reader and a writer, never closing
    try:
        os.write(writer, b"endless")
        expect_error("550", download, ftp, "pipe")
        ftp.voidcmd("TYPE A")
        expect_error("550", download, ftp, "pipe")
        ftp.voidcmd("TYPE I")
        expect_error("550", ftp.storbinary, "APPE pipe", io.BytesIO(b"x"))
        expect_error("550", ftp.storbinary, "STOR pipe", io.BytesIO(b"x"))
    finally:
        os.close(writer)
    expect_error("550", ftp.storbinary, "STOR pipe", io.BytesIO(b"x"))  # nobody reading it now
    assert download(ftp, "small.txt") == b"small\n"
    ftp.quit()


def check_rest_past_end_refused():
    # Resuming continues what is there: a REST past the end of the file is refused before 150, however far
    # (near 2^63 the truncate fails with EFBIG; 1 TiB would make a sparse file a terabyte past the limit).
    ftp = connect()
    ftp.voidcmd("TYPE I")
    ftp.storbinary("STOR rest.bin", io.BytesIO(b"0123456789"))
    for offset in [2**63 - 1000] * 50 + [2**40 + 10, 11]:
        expect_refused_before_150(ftp, "554", "STOR rest.bin", rest=offset)
    assert ftp.size("rest.bin") == 10
    ftp.storbinary("STOR rest.bin", io.BytesIO(b"abc"), rest="10")  # at the end: an honest resume
    assert download(ftp, "rest.bin") == b"0123456789abc"
    expect_error("501", ftp.sendcmd, f"REST {2**63}")  # not a 64-bit offset at all
    ftp.quit()


def check_limit_counts_the_file():
    # MaxUploadBytes is on the file's size: an append or a resume that would pass it is refused.
    ftp = connect()
    ftp.voidcmd("TYPE I")
    ftp.storbinary("STOR near.bin", io.BytesIO(b"n" * 999_995))
    try:
        ftp.storbinary("APPE near.bin", io.BytesIO(b"x" * 10))
        raise AssertionError("an append past MaxUploadBytes was accepted")
    except ftplib.error_perm as e:
        assert str(e).startswith("552"), e
    assert ftp.size("near.bin") == 999_995
    ftp.storbinary("APPE near.bin", io.BytesIO(b"x" * 5))
    assert ftp.size("near.bin") == 1_000_000
    ftp.delete("near.bin")
    ftp.quit()


def keep_alive(sessions, seconds):
    # The control connections idle out after 3 s: a NOOP each second keeps them while time passes.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for ftp in sessions:
            ftp.voidcmd("NOOP")
        time.sleep(0.5)


def check_passive_cap_per_address():
    source = ("127.0.0.5", 0)  # an address of its own, so other checks' listeners do not count
    sessions = [connect(source) for _ in range(4)]
    ports = [epsv_port(ftp) for ftp in sessions[:3]]
    expect_error("425", sessions[3].sendcmd, "EPSV")  # a fourth pending listener from that address
    expect_error("425", sessions[3].sendcmd, "PASV")
    other = connect()  # another address is served meanwhile, a whole transfer included
    assert download(other, "small.txt") == b"small\n"
    # A data connection that arrives frees its place at once; the session transfers over it as before.
    data = socket.create_connection((HOST, ports[0]), source_address=source)
    sessions[0].voidcmd("TYPE A")
    sessions[0].putcmd("RETR small.txt")
    assert sessions[0].getresp().startswith("150")
    got = b""
    while chunk := data.recv(1024):
        got += chunk
    data.close()
    assert sessions[0].voidresp().startswith("226") and got == b"small\r\n", got
    epsv_port(sessions[3])
    for ftp in sessions + [other]:
        ftp.quit()


def check_passive_listener_times_out():
    # A pending listener that sees no connection closes after the data timeout (3 s) and frees its port.
    source = ("127.0.0.7", 0)
    ftp = connect(source)
    port = epsv_port(ftp)
    keep_alive([ftp], 4.5)
    probe = socket.socket()
    probe.settimeout(5)
    try:
        probe.connect((HOST, port))
        raise AssertionError(f"passive port {port} still listens after the data timeout")
    except ConnectionRefusedError:
        pass
    finally:
        probe.close()
    assert download(ftp, "small.txt") == b"small\n"  # a new EPSV serves the session as before
    ftp.quit()


def reset(sock):
    """Closes with a TCP reset (SO_LINGER 0), as a client that crashes or a middlebox would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def check_data_reset_at_each_step():
    # The data connection reset before the first byte and in the middle, for a download and an upload: each
    # time a final 426 on the control connection, the session usable, the file closed (the fixture checks).
    ftp = connect()
    ftp.voidcmd("TYPE I")
    for command in ["RETR big.bin", "STOR reset.bin"]:
        for moved in [0, 200_000]:
            data = socket.create_connection((HOST, epsv_port(ftp)))
            ftp.putcmd(command)
            assert ftp.getresp().startswith("150")
            if command.startswith("RETR"):
                got = 0
                while got < moved:
                    got += len(data.recv(65536))
            elif moved:
                data.sendall(os.urandom(moved))
            reset(data)
            reply = ftp.getline()
            assert reply.startswith("426"), f"{command} reset after {moved} bytes: {reply}"
            ftp.voidcmd("NOOP")
    assert download(ftp, "small.txt") == b"small\n"
    ftp.quit()


def check_bad_names_and_offsets_refused_before_150():
    # No reply shows a path on the server's disk; what cannot succeed is refused before 150, not after the data.
    ftp = connect()
    ftp.voidcmd("TYPE I")
    long_name = "n" * 300
    for call in [lambda: ftp.mkd(long_name), lambda: ftp.rename("small.txt", long_name)]:
        reply = expect_error("553", call)
        assert ROOT not in reply and "/tmp" not in reply, reply
    expect_refused_before_150(ftp, "553", f"STOR {long_name}")
    ftp.mkd("exists")
    reply = expect_error("550", ftp.mkd, "exists")
    assert ROOT not in reply and "hostile" not in reply, reply  # no path of the server's disk, nor of the tree
    ftp.rmd("exists")
    expect_refused_before_150(ftp, "554", "RETR small.txt", rest=2**63 - 1000)
    assert download(ftp, "small.txt") == b"small\n"
    ftp.quit()


def check_upload_never_replaces_a_fifo():
    # With atomic uploads too, where the upload would otherwise be renamed over the FIFO.
    ftp = connect()
    ftp.voidcmd("TYPE I")
    expect_error("550", ftp.storbinary, "STOR pipe", io.BytesIO(b"x"))
    assert stat.S_ISFIFO(os.stat(os.path.join(HOSTILE, "pipe")).st_mode), "the FIFO was replaced"
    expect_error("550", download, ftp, "pipe")
    ftp.quit()


def check_control_characters_in_names():
    ftp = connect()
    ftp.voidcmd("TYPE I")
    # ftplib refuses CR in a command, an attacker does not: the raw line, and the 553 before any 150.
    ftp.sock.sendall(b"STOR x\r-rw-r--r--   1 ftp      ftp             1 Jan 01 00:00 FAKE.txt\r\n")
    reply = ftp.getline()
    assert reply.startswith("553"), reply
    expect_error("553", ftp.mkd, "dir\x1b[2Jname")
    expect_error("553", ftp.rename, "small.txt", "small\x07.txt")
    # A name made outside FTP with a CR in it is listed with '?': no forged LIST line, no raw CR.
    for command in ["LIST", "NLST", "MLSD"]:
        conn = ftp.transfercmd(command)
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
        conn.close()
        ftp.voidresp()
        assert raw.count(b"\r") == raw.count(b"\r\n"), f"{command} sent a bare CR: {raw!r}"
        assert b"evil?-rw-r--r--" in raw, f"{command} did not show the name escaped: {raw!r}"
    ftp.quit()


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}

if __name__ == "__main__":
    CHECKS[CHECK]()
    print("ok", CHECK)
