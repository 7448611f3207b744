"""A slow FTP download across a gateway drain: logs in as alice, starts RETR of NAME and reads it slowly,
touching MARKER once the first block has arrived (the test sends SIGTERM then). When the transfer ends it
reads the 226, sends NOOP and prints what the server answered, then the download's SHA-256.
usage: ftp_drain.py HOST PORT NAME MARKER"""
import ftplib
import hashlib
import socket
import sys
import time

host, port, name, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=60)
ftp.login("alice", "alice-pw")
ftp.voidcmd("TYPE I")
digest = hashlib.sha256()
data = ftp.transfercmd("RETR " + name)
blocks = 0
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    block = data.recv(64 * 1024)
    if not block:
        break
    digest.update(block)
    blocks += 1
    if blocks == 1:
        open(marker, "w").close()
    time.sleep(0.02)
data.close()
print("transfer:", ftp.voidresp().split(" ")[0], flush=True)
try:
    print("after:", ftp.sendcmd("NOOP")[:3], flush=True)
except ftplib.Error as error:
    print("after:", str(error)[:3], flush=True)
except (EOFError, OSError):
    print("after: closed", flush=True)
print("sha256:", digest.hexdigest(), flush=True)
