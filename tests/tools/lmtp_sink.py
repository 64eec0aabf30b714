#!/usr/bin/env python3
"""lmtp_sink: a minimal LMTP server (RFC 2033) for the delivery tests.

    lmtp_sink.py SOCKET_PATH OUTPUT_DIR [REPLY]

Accepts sessions on a unix socket and writes each message to
OUTPUT_DIR/<n>.eml, with the envelope in OUTPUT_DIR/<n>.env.  REPLY
(default "250 2.0.0 ok") is what it answers after the final dot, so a
test can make it fail temporarily (4xx) or permanently (5xx).
"""
import os
import socket
import sys


def serve(conn, outdir, reply, counter):
    f = conn.makefile("rwb")

    def send(line):
        f.write(line.encode() + b"\r\n")
        f.flush()

    send("220 lmtp_sink ready")
    sender, rcpts = None, []
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.decode("utf-8", "replace").rstrip("\r\n")
        verb = cmd.split(" ", 1)[0].upper()
        if verb == "LHLO":
            send("250-lmtp_sink")
            send("250 PIPELINING")
        elif verb == "MAIL":
            sender, rcpts = cmd[10:], []
            send("250 2.1.0 ok")
        elif verb == "RCPT":
            rcpts.append(cmd[8:])
            send("250 2.1.5 ok")
        elif verb == "DATA":
            send("354 go ahead")
            body = []
            while True:
                data = f.readline()
                if not data or data == b".\r\n":
                    break
                if data.startswith(b".."):
                    data = data[1:]
                body.append(data)
            counter[0] += 1
            base = os.path.join(outdir, str(counter[0]))
            with open(base + ".eml", "wb") as out:
                out.write(b"".join(body))
            with open(base + ".env", "w") as out:
                out.write("from %s\n" % sender)
                for r in rcpts:
                    out.write("rcpt %s\n" % r)
            for _ in rcpts:
                send(reply)
        elif verb == "QUIT":
            send("221 2.0.0 bye")
            return
        else:
            send("500 5.5.1 what")


def main():
    path, outdir = sys.argv[1], sys.argv[2]
    reply = sys.argv[3] if len(sys.argv) > 3 else "250 2.0.0 ok"
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(16)
    counter = [0]
    while True:
        conn, _ = s.accept()
        try:
            serve(conn, outdir, reply, counter)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
