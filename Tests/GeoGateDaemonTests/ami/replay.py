# A recorded Asterisk Manager Interface session, replayed to one client (Asterisk
# is not packaged for Debian 12): the banner, then the client's Login block is
# checked (user geogate, secret s3cret) and saved, then either the recorded
# events (session.txt, CRLF) or Asterisk's refusal, then the connection closes.
# Usage: python3 replay.py SESSION LOGIN-OUT PORT-OUT
import socket
import sys

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(1)
server.settimeout(30)
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
import os
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
conn, _ = server.accept()
conn.settimeout(10)
conn.sendall(b"Asterisk Call Manager/9.0.0\r\n")
login = b""
while b"\r\n\r\n" not in login:
    chunk = conn.recv(4096)
    if not chunk:
        sys.exit(1)
    login += chunk
with open(sys.argv[2], "wb") as f:
    f.write(login)
if b"Action: Login\r\n" in login and b"Username: geogate\r\n" in login and b"Secret: s3cret\r\n" in login:
    conn.sendall(b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n")
    with open(sys.argv[1], "rb") as f:
        conn.sendall(f.read().replace(b"\n", b"\r\n"))
else:
    conn.sendall(b"Response: Error\r\nMessage: Authentication failed\r\n\r\n")
conn.close()
