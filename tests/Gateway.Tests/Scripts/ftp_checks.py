#!/usr/bin/env python3
"""FTP checks with Python's ftplib (and raw sockets where ftplib is too polite), one per invocation.

usage: ftp_checks.py HOST PORT CHECK     -- prints "ok CHECK" and exits 0, or fails with a traceback.
Accounts the gateway under test must have: alice / alice-pw (read-write), bob / bob-pw (read-only);
anonymous logins allowed. Each check works in its own directory under alice's home.
"""
import ftplib
import io
import os
import socket
import sys
import threading
import time

from ftp_common import expect_closed, expect_error  # beside this script

HOST, PORT, CHECK = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def connect(user="alice", password="alice-pw"):
    ftp = ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=20)
    ftp.login(user, password)
    return ftp


def fresh_dir(ftp, name):
    try:
        for entry, facts in ftp.mlsd(name):
            if facts["type"] == "file":
                ftp.delete(f"{name}/{entry}")
        ftp.rmd(name)
    except ftplib.error_perm:
        pass
    ftp.mkd(name)
    ftp.cwd(name)


def download(ftp, name):
    got = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", got.write)
    return got.getvalue()


def retrlines(ftp, command):
    lines = []
    ftp.retrlines(command, lines.append)
    return lines


def check_traversal_stays_inside():
    ftp = connect()
    ftp.cwd("../../../..")
    assert ftp.pwd() == "/"
    expect_error("550", ftp.retrbinary, "RETR ../../../../etc/passwd", lambda b: None)
    expect_error("550", ftp.cwd, "/../../etc")
    ftp.quit()


def check_commands():
    ftp = connect()
    fresh_dir(ftp, "commands")
    assert ftp.pwd() == "/commands"
    assert ftp.sendcmd("SYST") == "215 UNIX Type: L8"
    assert ftp.sendcmd("NOOP").startswith("200")
    assert ftp.sendcmd("TYPE I").startswith("200") and ftp.sendcmd("MODE S").startswith("200") and ftp.sendcmd("STRU F").startswith("200")
    assert ftp.sendcmd("ALLO 100").startswith("202")
    feat = ftp.sendcmd("FEAT")
    for feature in ("UTF8", "SIZE", "MDTM", "REST STREAM", "MLST type*;size*;modify*;", "EPSV", "EPRT"):
        assert feature in feat, feat
    assert ftp.sendcmd("OPTS UTF8 ON").startswith("200")
    data = os.urandom(200_000)
    ftp.storbinary("STOR blob.bin", io.BytesIO(data))
    assert ftp.size("blob.bin") == len(data)
    assert download(ftp, "blob.bin") == data
    got = io.BytesIO()
    ftp.retrbinary("RETR blob.bin", got.write, rest=150_000)  # REST resume
    assert got.getvalue() == data[150_000:]
    ftp.storbinary("APPE blob.bin", io.BytesIO(b"tail"))
    assert ftp.size("blob.bin") == len(data) + 4
    assert len(ftp.sendcmd("MDTM blob.bin").split()[1]) == 14
    assert ftp.sendcmd("MFMT 20200102030405 blob.bin").startswith("213")
    assert ftp.sendcmd("MDTM blob.bin") == "213 20200102030405"
    facts = dict(ftp.mlsd())
    assert facts["blob.bin"]["type"] == "file" and facts["blob.bin"]["size"] == str(len(data) + 4)
    assert facts["blob.bin"]["modify"] == "20200102030405"
    assert "unique" in facts["blob.bin"] and "perm" in facts["blob.bin"]
    assert "type=file;" in ftp.sendcmd("MLST blob.bin")
    assert ftp.mkd('say "hi"') == '/commands/say "hi"'  # 257 with the inner quotes doubled, parsed back
    ftp.mkd('say "ho"')
    ftp.rename("blob.bin", "renamed.bin")
    assert sorted(ftp.nlst()) == sorted(["renamed.bin", 'say "hi"', 'say "ho"'])
    lines = []
    ftp.retrlines("LIST -la", lines.append)
    assert any(line.startswith("-rw") and line.endswith(" renamed.bin") for line in lines), lines
    assert any(line.startswith("d") and line.endswith(' say "hi"') for line in lines), lines
    ftp.cwd('say "hi"')
    ftp.cwd("..")
    ftp.sendcmd("CDUP")
    assert ftp.pwd() == "/"
    ftp.cwd("commands")
    assert ftp.sendcmd("SITE CHMOD 640 renamed.bin").startswith("200")
    assert any(line.startswith("-rw-r----- ") for line in retrlines(ftp, "LIST renamed.bin")), "mode not applied"
    ftp.delete("renamed.bin")
    ftp.rmd('say "hi"')
    ftp.rmd('say "ho"')
    expect_error("550", ftp.delete, "missing.bin")
    expect_error("550", ftp.cwd, "nowhere")
    expect_error("500", ftp.sendcmd, "BOGUS")
    expect_error("501", ftp.sendcmd, "RETR")
    expect_error("503", ftp.sendcmd, "RNTO x")
    stou = ftp.storbinary("STOU", io.BytesIO(b"unique"))
    assert stou.startswith("226"), stou
    assert len(ftp.nlst()) == 1
    assert ftp.sendcmd("STAT").startswith("211")
    assert ftp.sendcmd("HELP").startswith("214")
    ftp.quit()


def check_epsv():
    ftp = connect()
    fresh_dir(ftp, "epsv")
    ftp.af = socket.AF_INET6  # makes ftplib use EPSV
    ftp.storbinary("STOR e.bin", io.BytesIO(b"epsv"))
    ftp.af = socket.AF_INET
    assert ftp.sendcmd("EPSV ALL").startswith("200")
    expect_error("503", ftp.sendcmd, "PASV")
    ftp.quit()


def check_ascii():
    ftp = connect()
    fresh_dir(ftp, "ascii")
    ftp.sendcmd("TYPE A")
    ftp.storlines("STOR text.txt", io.BytesIO(b"one\r\ntwo\r\nthree\r\n"))  # storlines sends CRLF
    ftp.sendcmd("TYPE I")
    assert download(ftp, "text.txt") == b"one\ntwo\nthree\n", got.getvalue()  # stored with local line ends
    ftp.sendcmd("TYPE A")
    conn = ftp.transfercmd("RETR text.txt")
    raw = b""
    while chunk := conn.recv(1024):
        raw += chunk
    conn.close()
    ftp.voidresp()
    assert raw == b"one\r\ntwo\r\nthree\r\n", raw  # sent with network line ends
    ftp.quit()


def check_utf8_names():
    ftp = connect()
    fresh_dir(ftp, "utf8")
    ftp.encoding = "utf-8"
    ftp.storbinary("STOR ünïcödé ✓ file.txt", io.BytesIO(b"x"))
    assert ftp.nlst() == ["ünïcödé ✓ file.txt"]
    ftp.quit()


def check_read_only_user():
    ftp = connect("bob", "bob-pw")
    for call, args in ((ftp.storbinary, ("STOR nope.bin", io.BytesIO(b"x"))), (ftp.mkd, ("nope",)), (ftp.delete, ("hello.txt",)),
                       (ftp.sendcmd, ("SITE CHMOD 777 hello.txt",))):
        expect_error("550", call, *args)
    ftp.quit()


def check_anonymous_read_only():
    ftp = connect("anonymous", "guest@example.org")
    expect_error("550", ftp.storbinary, "STOR nope.bin", io.BytesIO(b"x"))
    ftp.quit()


def check_login_required_and_unknown_user():
    ftp = ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=20)
    expect_error("530", ftp.sendcmd, "PWD")
    assert ftp.sendcmd("USER nobody-here").startswith("331")  # no probing of user names
    expect_error("530", ftp.sendcmd, "PASS guess")
    ftp.close()


def check_three_failures_close():
    ftp = ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=20)
    replies = []
    for _ in range(3):
        ftp.sendcmd("USER alice")
        try:
            ftp.sendcmd("PASS wrong")
        except ftplib.Error as e:
            replies.append(str(e)[:3])
    assert replies == ["530", "530", "421"], replies
    expect_closed(ftp, "after three failed logins")


def check_bounce_refused():
    ftp = connect()
    expect_error("504", ftp.sendcmd, "PORT 127,0,0,2,195,80")   # another host
    expect_error("504", ftp.sendcmd, "PORT 127,0,0,1,0,21")      # a privileged port
    expect_error("504", ftp.sendcmd, "EPRT |1|127.0.0.2|50000|")
    expect_error("501", ftp.sendcmd, "PORT 1,2,3")
    ftp.quit()


def check_pasv_hijack_refused():
    ftp = connect()
    fresh_dir(ftp, "hijack")
    ftp.storbinary("STOR secret.bin", io.BytesIO(b"for alice only"))
    host, port = ftplib.parse227(ftp.sendcmd("PASV"))
    thief = socket.socket()
    thief.bind(("127.0.0.2", 0))  # another client on another address races for the data port
    thief.connect((host, port))
    ftp.putcmd("RETR secret.bin")
    assert ftp.getresp().startswith("150")
    thief.settimeout(5)
    data = b""
    try:
        data = thief.recv(100)
    except (ConnectionResetError, socket.timeout):
        pass
    assert data == b"", f"the thief got {data!r}"
    thief.close()
    mine = socket.create_connection((host, port), timeout=10)  # the real client, from the control's address
    received = b""
    while chunk := mine.recv(100):
        received += chunk
    mine.close()
    assert received == b"for alice only", received
    assert ftp.getresp().startswith("226")
    ftp.quit()


def check_abort_transfer():
    ftp = connect()
    fresh_dir(ftp, "abort")
    ftp.storbinary("STOR big.bin", io.BytesIO(os.urandom(8_000_000)))
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(1024)
    first = ftp.abort()  # sends IAC IP, IAC DM (urgent), then ABOR
    second = ftp.getresp()  # RFC 959: 426 for the transfer, then 226 for the ABOR
    assert (first[:3], second[:3]) in {("426", "226"), ("226", "226")}, (first, second)
    conn.close()
    assert ftp.sendcmd("NOOP").startswith("200")  # the control connection carries on
    ftp.quit()


def check_final_reply_ends_transfer():
    # Once the client has read a transfer's 226, the transfer is over: a STAT right after it gets the
    # session's 211, never the 213 "transfer in progress" of the transfer that has just answered.
    ftp = connect()
    fresh_dir(ftp, "final")
    ftp.storbinary("STOR one.bin", io.BytesIO(b"x"))
    for _ in range(300):
        assert ftp.nlst() == ["one.bin"]
        reply = ftp.sendcmd("STAT")
        assert reply.startswith("211"), reply
    ftp.quit()


def check_cut_off_upload_leaves_nothing():
    ftp = connect()
    fresh_dir(ftp, "cutoff")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR partial.bin")
    conn.sendall(os.urandom(100_000))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()  # reset: the client vanished mid-upload
    try:
        reply = ftp.getresp()
    except ftplib.Error as e:
        reply = str(e)
    assert reply.startswith("426"), reply
    assert ftp.nlst() == [], ftp.nlst()
    ftp.quit()


def check_vanished_mid_download():
    ftp = connect()
    fresh_dir(ftp, "vanish")
    data = os.urandom(8_000_000)
    ftp.storbinary("STOR big.bin", io.BytesIO(data))
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(4096)
    # The client vanishes: data and control connections reset, no ABOR, no QUIT. (ftp.close() closes the
    # control socket's file object too; a socket closed under a live makefile() stays open.)
    for sock in (conn, ftp.sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()
    ftp.close()
    # Another client finds the server well and the file whole.
    other = connect()
    other.cwd("vanish")
    assert download(other, "big.bin") == data
    assert other.sendcmd("NOOP").startswith("200")
    other.quit()


def check_resume_refused_when_atomic():
    ftp = connect()
    fresh_dir(ftp, "resume")
    # rest= sends REST right before STOR (after ftplib's own TYPE I, which would clear it)
    expect_error("550", ftp.storbinary, "STOR r.bin", io.BytesIO(b"x"), 8192, None, 100)
    ftp.quit()


def check_concurrent_clients():
    errors = []

    def client(i):
        try:
            ftp = connect()
            name = f"/concurrent/c{i}.bin"
            data = os.urandom(300_000 + i)
            ftp.storbinary(f"STOR {name}", io.BytesIO(data))
            assert download(ftp, name) == data, f"client {i}: content differs"
            ftp.quit()
        except Exception as e:  # noqa: BLE001 - collected and reported
            errors.append(f"client {i}: {e!r}")

    ftp = connect()
    fresh_dir(ftp, "concurrent")
    ftp.quit()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    ftp = connect()
    assert len(ftp.nlst("/concurrent")) == 25
    ftp.quit()


def check_commands_before_greeting_and_pipelined():
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.sendall(b"FEAT\r\nUSER alice\r\nPASS alice-pw\r\nPWD\r\nQUIT\r\n")  # all at once, before the 220
    received = b""
    while chunk := s.recv(4096):
        received += chunk
    s.close()
    codes = [line[:4] for line in received.decode().split("\r\n") if line[:3].isdigit() and line[3:4] == " "]
    assert codes == ["220 ", "211 ", "331 ", "230 ", "257 ", "221 "], received


def check_long_line_and_garbage():
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.recv(1024)
    s.sendall(b"NOOP " + b"x" * 5000 + b"\r\n")
    reply = s.recv(1024)
    assert reply.startswith(b"500"), reply
    s.sendall(bytes(range(1, 200)) + b"\r\nNOOP\r\n")
    replies = b""
    while b"200 " not in replies:
        replies += s.recv(4096)
    assert b"500" in replies, replies
    # Unknown verbs come back without their control characters (ESC, BEL, DEL, the C1 CSI) and at most
    # 32 characters long, so a client printing replies gets no escape sequences and no 4 KiB echo.
    s.sendall(b"\x1b[2J\x07EVIL\x7f\xc2\x9bX arg\r\n" + b"Z" * 3000 + b"\r\nNOOP\r\n")
    replies = b""
    while not replies.endswith(b"\r\n") or b"200 " not in replies:
        chunk = s.recv(4096)
        assert chunk, replies
        replies += chunk
    lines = replies.split(b"\r\n")[:-1]
    assert len(lines) == 3, lines
    for line in lines:
        assert all(b >= 0x20 and b != 0x7F for b in line), line
        assert len(line) < 100, line
    assert lines[0].decode() == "500 '?[2J?EVIL??X': command not understood.", lines[0]
    assert lines[1].decode() == "500 '" + "Z" * 32 + "...': command not understood.", lines[1]
    assert lines[2].startswith(b"200 "), lines[2]
    s.close()


# Checks for a gateway with fast login throttling (4 failures lock an address out), a 2 s idle timeout,
# MaxUploadBytes 1000 and AtomicUploads false.

def check_lockout_per_address():
    attacker = ("127.0.0.3", 0)  # its own loopback address, so the other checks' 127.0.0.1 stays welcome
    for _ in range(2):  # 3 failures close a connection; the 4th, on a new one, locks the address out
        ftp = ftplib.FTP()
        ftp.connect(HOST, PORT, timeout=20, source_address=attacker)
        for _ in range(2):
            ftp.sendcmd("USER alice")
            expect_error("530", ftp.sendcmd, "PASS wrong")
        ftp.close()
    ftp = ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=20, source_address=attacker)
    ftp.sendcmd("USER alice")
    expect_error("530", ftp.sendcmd, "PASS alice-pw")  # the right password, refused while locked out
    ftp.close()
    other = ftplib.FTP()
    other.connect(HOST, PORT, timeout=20, source_address=("127.0.0.4", 0))  # another address is not locked out
    other.login("alice", "alice-pw")
    other.quit()


def check_idle_timeout_421():
    s = socket.create_connection((HOST, PORT), timeout=20)
    assert s.recv(1024).startswith(b"220")
    s.sendall(b"USER alice\r\nPASS alice-pw\r\n")
    replies = b""
    while b"230" not in replies:
        chunk = s.recv(1024)
        assert chunk, f"closed before logging in: {replies!r}"
        replies += chunk
    received = b""
    while chunk := s.recv(1024):  # say nothing: the server gives up after the idle timeout
        received += chunk
    assert received.startswith(b"421"), received


def check_upload_limit_discards():
    ftp = connect()
    fresh_dir(ftp, "limit")
    expect_error("552", ftp.storbinary, "STOR big.bin", io.BytesIO(os.urandom(5000)))
    assert ftp.nlst() == [], ftp.nlst()
    ftp.storbinary("STOR small.bin", io.BytesIO(b"s" * 900))
    assert ftp.size("small.bin") == 900
    ftp.quit()


def check_non_atomic_keeps_and_resumes():
    ftp = connect()
    fresh_dir(ftp, "resumable")
    data = os.urandom(800)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR part.bin")
    conn.sendall(data[:500])
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()  # cut off
    try:
        ftp.getresp()
    except ftplib.Error:
        pass
    kept = ftp.size("part.bin")
    assert 0 < kept <= 500, kept  # what arrived stays, as vsftpd does
    ftp.storbinary("STOR part.bin", io.BytesIO(data[kept:]), rest=kept)  # REST + STOR resumes
    assert download(ftp, "part.bin") == data
    ftp.quit()


def check_overwrite_after_download():
    # A download must leave no handle on the file: overwriting it in place right after must work.
    ftp = connect()
    fresh_dir(ftp, "overwrite")
    ftp.storbinary("STOR f.bin", io.BytesIO(b"a" * 900))
    ftp.retrbinary("RETR f.bin", lambda b: None)
    ftp.storbinary("STOR f.bin", io.BytesIO(b"b" * 800))
    assert download(ftp, "f.bin") == b"b" * 800
    ftp.quit()


def check_slow_upload_completes():
    # A sender that trickles (well under the server's 256 KiB receive low-water mark per 2 s data timeout)
    # is slow, not stalled: its upload completes intact.
    ftp = connect()
    fresh_dir(ftp, "slow")
    data = os.urandom(900)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR slow.bin")
    for at in range(0, len(data), 100):  # 9 pieces over ~4.5 s
        conn.sendall(data[at:at + 100])
        time.sleep(0.5)
    conn.close()
    assert ftp.voidresp().startswith("226")
    assert download(ftp, "slow.bin") == data
    ftp.quit()


def check_stalled_upload_fails():
    # A sender that stops sending (without closing) is cut off after the data timeout: 426, nothing kept
    # beyond what arrived, and the control connection still works.
    ftp = connect()
    fresh_dir(ftp, "stalled")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR stalled.bin")
    conn.sendall(b"x" * 100)
    expect_error("426", ftp.voidresp)
    conn.close()
    assert ftp.voidcmd("NOOP").startswith("200")
    ftp.quit()


def store_expecting(ftp, code, command, data):
    # The server may give up (and close the data connection) while the client is still sending.
    conn = ftp.transfercmd(command)
    try:
        conn.sendall(data)
    except OSError:
        pass
    conn.close()
    expect_error(code, ftp.voidresp)


def check_disk_full_discards():
    # alice's home is a 2 MiB filesystem (FtpDiskFullFixture).
    ftp = connect()
    ftp.voidcmd("TYPE I")
    keep = os.urandom(100_000)
    ftp.storbinary("STOR keep.bin", io.BytesIO(keep))
    store_expecting(ftp, "452", "STOR big.bin", os.urandom(4 << 20))
    store_expecting(ftp, "452", "STOR keep.bin", os.urandom(4 << 20))  # an overwrite that does not fit
    assert ftp.nlst() == ["keep.bin"], ftp.nlst()  # the tmpfs hides the fixture's hello.txt
    assert download(ftp, "keep.bin") == keep, "the old file must be whole"
    # Nothing of the refused uploads takes space: 1.5 MiB fits again.
    again = os.urandom(1536 << 10)
    ftp.storbinary("STOR again.bin", io.BytesIO(again))
    assert ftp.size("again.bin") == len(again)
    ftp.quit()


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}

if __name__ == "__main__":
    CHECKS[CHECK]()
    print("ok", CHECK)
