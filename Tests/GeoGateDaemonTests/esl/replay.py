# A recorded FreeSWITCH event socket (ESL) session, replayed to one client
# (FreeSWITCH is not packaged for Debian 12): the auth request, the client's
# `auth` checked (password s3cret) and saved with its `event` command, then each
# recorded event body (events.txt, bodies separated by "---" lines) with its
# Content-Length, then the disconnect notice.
# Usage: python3 replay.py EVENTS COMMANDS-OUT PORT-OUT
import os
import socket
import sys

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(1)
server.settimeout(30)
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
conn, _ = server.accept()
conn.settimeout(10)
received = b""


def command():
    global received
    while b"\n\n" not in received:
        chunk = conn.recv(4096)
        if not chunk:
            sys.exit(1)
        received += chunk
    line, received = received.split(b"\n\n", 1)
    with open(sys.argv[2], "ab") as f:
        f.write(line + b"\n")
    return line


conn.sendall(b"Content-Type: auth/request\n\n")
if command() != b"auth s3cret":
    conn.sendall(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
    conn.close()
    sys.exit(0)
conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
command()
conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
with open(sys.argv[1], "rb") as f:
    for body in f.read().split(b"---\n"):
        conn.sendall(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body)
goodbye = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
conn.sendall(b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n" % len(goodbye) + goodbye)
conn.close()
