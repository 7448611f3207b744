"""What the FTP check scripts share (ftp_checks.py, ftps_checks.py)."""
import ftplib


def expect_error(code, call, *args):
    """Calls an ftplib method that must fail with a reply starting with `code`; returns that reply."""
    try:
        call(*args)
    except ftplib.Error as e:
        assert str(e).startswith(code), f"expected {code}, got {e}"
        return str(e)
    raise AssertionError(f"expected {code}, got success")


def expect_closed(ftp, why):
    """The server has closed the control connection: a NOOP gets no reply."""
    try:
        ftp.sendcmd("NOOP")
    except (EOFError, OSError, ftplib.Error):
        return
    raise AssertionError(f"connection still open {why}")
