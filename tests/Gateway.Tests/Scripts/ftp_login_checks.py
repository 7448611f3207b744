#!/usr/bin/env python3
"""FTP login checks with Python's ftplib, one per invocation: lockouts.

usage: ftp_login_checks.py HOST PORT CHECK   -- prints "ok CHECK" and exits 0, or fails with a traceback.
Accounts the gateway under test must have: alice / alice-pw, bob / bob-pw; anonymous logins allowed. Each check
connects from loopback addresses of its own (127.0.0.x), so per-address lockouts never cross checks.
"""
import ftplib
import sys

from ftp_common import expect_error  # beside this script

HOST, PORT, CHECK = sys.argv[1], int(sys.argv[2]), sys.argv[3]


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
    try:
        ftp.sendcmd("NOOP")
        raise AssertionError("connection still open after three failed logins")
    except (EOFError, OSError, ftplib.Error):
        pass


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}

if __name__ == "__main__":
    CHECKS[CHECK]()
    print("ok", CHECK)
