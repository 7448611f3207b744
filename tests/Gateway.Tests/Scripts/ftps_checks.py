"""FTPS checks (RFC 4217; explicit, and implicit on a TLS-first port) with Python's ftplib.FTP_TLS and ssl, against a gateway with a test certificate.

usage: ftps_checks.py HOST PORT CAFILE CHECK [ADMIN_URL]   -- prints "ok CHECK" when the check passes
The users: alice/alice-pw (may log in without TLS unless the listener requires it), bob/bob-pw (RequireTls).
"""
import ftplib
import io
import json
import os
import socket
import ssl
import sys
import urllib.request

from ftp_common import expect_error  # beside this script

HOST, PORT, CAFILE, CHECK = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ADMIN = sys.argv[5] if len(sys.argv) > 5 else None
CONTEXT = ssl.create_default_context(cafile=CAFILE)


class FtpTls(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data connections and records whether it did."""

    def __init__(self, context=CONTEXT):
        super().__init__(context=context, timeout=20)
        self.reused = []
        self.alpn = []

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.reused.append(conn.session_reused)
            self.alpn.append(conn.selected_alpn_protocol())
        return conn, size


def connect(context=CONTEXT):
    ftp = FtpTls(context)
    ftp.connect(HOST, PORT)
    return ftp


class ImplicitFtpTls(FtpTls):
    """Implicit FTPS (PORT is then the TLS-first port): TLS before the greeting, data protected from the start."""

    def connect(self, host, port, timeout=20):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = self.context.wrap_socket(socket.create_connection((host, port), timeout), server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        self._prot_p = True  # the server's default on this port, as ours says PROT P without being asked
        return self.welcome


def plain_auth_tls(after=b""):
    """A bare control connection up to AUTH TLS's 234 (with `after` in the same packet), ready to be wrapped."""
    plain = socket.create_connection((HOST, PORT), timeout=20)
    with plain.makefile("rb") as reader:
        assert reader.readline().startswith(b"220")
        plain.sendall(b"AUTH TLS\r\n" + after)
        assert reader.readline().startswith(b"234")
    return plain


def check_explicit():
    ftp = connect()
    features = ftp.sendcmd("FEAT")
    for feature in ("AUTH TLS", "PBSZ", "PROT"):
        assert f" {feature}\n" in features + "\n", features
    expect_error("503", ftp.sendcmd, "PROT P")  # not before AUTH
    ftp.auth()
    assert ftp.sock.version() in ("TLSv1.2", "TLSv1.3"), ftp.sock.version()
    expect_error("503", ftp.sendcmd, "AUTH TLS")  # once only
    ftp.login("alice", "alice-pw")
    ftp.prot_p()
    data = os.urandom(1_500_000)
    ftp.storbinary("STOR tls.bin", io.BytesIO(data))
    back = io.BytesIO()
    ftp.retrbinary("RETR tls.bin", back.write)
    assert back.getvalue() == data, "download differs from upload"
    assert "tls.bin" in ftp.nlst(), ftp.nlst()
    lines = []
    ftp.retrlines("LIST", lines.append)
    assert any("tls.bin" in line for line in lines), lines
    # Every data connection resumed the control connection's TLS session (FileZilla insists on it).
    assert ftp.reused and all(ftp.reused), ftp.reused
    expect_error("533", ftp.sendcmd, "CCC")
    expect_error("536", ftp.sendcmd, "PROT S")
    ftp.prot_c()  # clear data is allowed when the listener does not require TLS
    assert "tls.bin" in ftp.nlst()
    ftp.delete("tls.bin")
    ftp.quit()


def check_injection():
    # "AUTH TLS" and "USER evil" in one packet: the injected line must never be read, in clear or as TLS.
    tls = CONTEXT.wrap_socket(plain_auth_tls(after=b"USER evil\r\n"), server_hostname=HOST)
    tls.sendall(b"NOOP\r\n")
    first = tls.recv(4096)
    assert first.startswith(b"200 "), first  # not 331 for the injected USER
    tls.sendall(b"QUIT\r\n")
    assert tls.recv(4096).startswith(b"221")
    tls.unwrap()  # the server answers our close_notify with its own
    tls.close()


def alpn_context(*protocols):
    context = ssl.create_default_context(cafile=CAFILE)
    context.set_alpn_protocols(list(protocols))
    return context


def expect_no_application_protocol(tls_connect):
    try:
        tls_connect()
    except ssl.SSLError as e:
        assert "no application protocol" in str(e).lower().replace("_", " "), e
    else:
        raise AssertionError("a client offering only HTTP's ALPN names was let in")


def check_alpn():
    # A client naming FTP's ALPN id gets it on the control and every data connection.
    ftp = connect(alpn_context("ftp"))
    ftp.auth()
    assert ftp.sock.selected_alpn_protocol() == "ftp", ftp.sock.selected_alpn_protocol()
    ftp.login("alice", "alice-pw")
    ftp.prot_p()
    assert "hello.txt" in ftp.nlst()
    ftp.retrbinary("RETR hello.txt", lambda _: None)
    assert ftp.alpn == ["ftp", "ftp"] and all(ftp.reused), (ftp.alpn, ftp.reused)
    ftp.quit()
    # An HTTPS client (a browser sent here by a hostile page: the ALPACA attack) is refused in the handshake.
    plain = plain_auth_tls()
    expect_no_application_protocol(lambda: alpn_context("h2", "http/1.1").wrap_socket(plain, server_hostname=HOST))
    plain.close()


def check_closed_by_admin():
    # An administrator closes a TLS session: the client reads 421 over TLS, then the server's close_notify —
    # a TCP close without it would raise SSLEOFError here, as ragged EOFs are not suppressed.
    tls = CONTEXT.wrap_socket(plain_auth_tls(), server_hostname=HOST, suppress_ragged_eofs=False)
    tls.sendall(b"USER alice\r\n")
    assert tls.recv(4096).startswith(b"331")
    remote = "%s:%d" % tls.getsockname()[:2]
    with urllib.request.urlopen(f"{ADMIN}/admin/connections?remote={remote}", timeout=20) as response:
        (connection,) = json.load(response)["items"]
    close = urllib.request.Request(f"{ADMIN}/admin/connections/{connection['id']}", method="DELETE")
    with urllib.request.urlopen(close, timeout=20) as response:
        assert response.status in (200, 202, 204), response.status
    received = b""
    while chunk := tls.recv(4096):  # b"" only after close_notify
        received += chunk
    assert received.startswith(b"421 "), received
    tls.close()


def check_truncated_upload():
    ftp = connect()
    ftp.auth()
    ftp.login("alice", "alice-pw")
    ftp.prot_p()
    conn, _ = ftp.ntransfercmd("STOR cut.bin")
    conn.sendall(os.urandom(200_000))
    socket.socket.shutdown(conn, socket.SHUT_RDWR)  # the TCP connection ends without TLS close_notify
    conn.close()
    try:
        reply = ftp.voidresp()
    except ftplib.error_temp as e:
        reply = str(e)
    assert reply.startswith("426"), reply
    assert "cut.bin" not in ftp.nlst(), "a cut-short upload must leave nothing"
    ftp.quit()


def check_user_requires_tls():
    ftp = connect()
    expect_error("530", ftp.sendcmd, "USER bob")  # bob logs in only over TLS
    ftp.login("alice", "alice-pw")  # alice may log in in clear on an explicit listener
    ftp.quit()
    ftp = connect()
    ftp.auth()
    ftp.login("bob", "bob-pw")
    ftp.prot_c()
    expect_error("521", ftp.nlst)  # bob's data must be protected too
    ftp.prot_p()
    ftp.nlst()
    ftp.quit()


def check_required():
    ftp = connect()
    expect_error("530", ftp.sendcmd, "USER alice")
    ftp.auth()
    ftp.login("alice", "alice-pw")
    expect_error("521", ftp.nlst)  # PROT C (the default): refused
    ftp.prot_p()
    ftp.storbinary("STOR required.bin", io.BytesIO(b"secret"))
    back = io.BytesIO()
    ftp.retrbinary("RETR required.bin", back.write)
    assert back.getvalue() == b"secret"
    ftp.delete("required.bin")
    ftp.quit()


def check_implicit():
    ftp = ImplicitFtpTls()
    assert ftp.connect(HOST, PORT).startswith("220")
    assert ftp.sock.version() == "TLSv1.2", ftp.sock.version()
    expect_error("503", ftp.sendcmd, "AUTH TLS")  # TLS already
    ftp.login("alice", "alice-pw")
    data = os.urandom(800_000)
    ftp.storbinary("STOR implicit.bin", io.BytesIO(data))
    back = io.BytesIO()
    ftp.retrbinary("RETR implicit.bin", back.write)
    assert back.getvalue() == data, "download differs from upload"
    assert "implicit.bin" in ftp.nlst()
    assert ftp.reused and all(ftp.reused), ftp.reused  # data connections resume the TLS-first session too
    ftp.delete("implicit.bin")
    ftp.quit()
    # https://host:990/ in a browser is refused in the handshake (ALPN), before any FTP reply is written to it.
    expect_no_application_protocol(lambda: alpn_context("http/1.1").wrap_socket(
        socket.create_connection((HOST, PORT), timeout=20), server_hostname=HOST))


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}

if __name__ == "__main__":
    CHECKS[CHECK]()
    print("ok", CHECK)
