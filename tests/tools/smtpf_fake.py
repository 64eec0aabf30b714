#!/usr/bin/env python3
"""smtpf_fake: a stand-in smtpfd for testing the MTA side of smtpf.

    smtpf_fake.py [options] NAME OUTDIR

Speaks smtpf 1.0 (protocol/smtpf.md) as smtpfd would, with a toy SMTP
server in place of filters and a downstream MTA.  Options:

    --unix PATH                 listen on a unix socket
    --tls PORT CERT KEY CA      listen on 127.0.0.1:PORT with TLS, and
                                require a client certificate signed by CA
    --version V                 answer hello with this version

Each session's client bytes, reassembled from the line messages, are
appended to OUTDIR/SID.raw; OUTDIR/log gets one line per event (hello,
open, tls, gone, ...).  The greeting is "220 NAME ESMTP smtpf_fake".
Commands: EHLO (offers STARTTLS when open said the MTA can), STARTTLS
(lines that cross it, sent in clear before TLS, are ignored as smtpfd
must ignore them),
DATA (then lines until "."), QUIT, ECHO TEXT (250 TEXT), BREAK (sends a
malformed line: the MTA must drop the link), BREAKMID (the first line
of a multi-line reply, then a malformed line), anything else 250.
"""
import os
import socket
import ssl
import sys
import threading

ENDS = {"crlf": b"\r\n", "lf": b"\n", "part": b"", "eof": b""}


class Fake:
    def __init__(self, name, outdir, version):
        self.name = name
        self.outdir = outdir
        self.version = version
        self.lock = threading.Lock()

    def log(self, text):
        with self.lock:
            with open(os.path.join(self.outdir, "log"), "a") as f:
                f.write(text + "\n")

    def serve(self, conn):
        f = conn.makefile("rwb", buffering=0)
        wlock = threading.Lock()

        def send(line):
            with wlock:
                f.write(line.encode("utf-8", "surrogateescape") + b"\n")

        sessions = {}
        while True:
            raw = f.readline()
            if not raw:
                self.log("link closed")
                return
            if not raw.endswith(b"\n"):
                self.log("partial line")
                return
            line = raw[:-1].decode("utf-8", "surrogateescape")
            kind = line.split("|", 1)[0]
            if kind == "hello":
                self.log("hello " + line)
                send("hello|smtpf|%s|%s|" % (self.version, self.name))
            elif kind == "ping":
                send("pong|" + line.split("|")[1])
            elif kind == "error":
                self.log("error " + line)
            elif kind == "open":
                f_ = line.split("|", 8)
                sid = f_[1]
                sessions[sid] = {"cur": b"", "data": False,
                                 "mode": f_[7], "tls": f_[7] == "smtps"}
                self.log("open %s %s" % (sid, " ".join(f_[2:])))
                send("reply|%s|220 %s ESMTP smtpf_fake" % (sid, self.name))
            elif kind == "tls":
                sid = line.split("|")[1]
                sessions[sid]["tls"] = True
                sessions[sid]["starttls"] = False
                self.log("tls %s %s" % (sid, line))
            elif kind == "gone":
                sid, reason = line.split("|", 2)[1:]
                sessions.pop(sid, None)
                self.log("gone %s %s" % (sid, reason))
            elif kind == "line":
                _, sid, end, data = raw[:-1].split(b"|", 3)
                sid, end = sid.decode(), end.decode()
                with open(os.path.join(self.outdir, sid + ".raw"), "ab") as o:
                    o.write(data + ENDS[end])
                if end == "part":
                    self.log("part " + sid)
                s = sessions[sid]
                if s.get("starttls"):
                    # sent after STARTTLS in clear: never a command
                    self.log("ignored %s %r" % (sid, data))
                    continue
                s["cur"] += data
                if end in ("crlf", "lf"):
                    cmd, s["cur"] = s["cur"], b""
                    self.command(send, sid, s, cmd)
            else:
                self.log("unexpected " + line)

    def command(self, send, sid, s, cmd):
        text = cmd.decode("utf-8", "surrogateescape")

        def reply(t):
            send("reply|%s|%s" % (sid, t))

        if s["data"]:
            if cmd == b".":
                s["data"] = False
                reply("250 2.0.0 queued by " + self.name)
            return
        verb = text.split(" ", 1)[0].upper()
        if verb == "EHLO":
            reply("250-" + self.name)
            if s["mode"] in ("starttls", "require") and not s["tls"]:
                reply("250-STARTTLS")
            reply("250 PIPELINING")
        elif verb == "STARTTLS":
            send("starttls|" + sid + "|220 2.0.0 Ready to start TLS")
            s["starttls"] = True
        elif verb == "DATA":
            s["data"] = True
            reply("354 go ahead")
        elif verb == "QUIT":
            reply("221 2.0.0 Bye")
            send("close|" + sid)
        elif verb == "ECHO":
            reply("250 " + text[5:])
        elif verb == "BREAK":
            send("frobnicate|" + sid)
        elif verb == "BREAKMID":
            reply("250-the start of a reply")
            send("frobnicate|" + sid)
        else:
            reply("250 2.0.0 ok")


def accept_loop(fake, sock, wrap=None):
    while True:
        conn, _ = sock.accept()
        if wrap is not None:
            try:
                conn = wrap(conn)
            except (ssl.SSLError, OSError) as e:
                fake.log("tls refused: %s" % e)
                conn.close()
                continue
        threading.Thread(target=fake.serve, args=(conn,), daemon=True).start()


def main():
    args = sys.argv[1:]
    unix = tls = None
    version = "1.0"
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--unix":
            unix = args.pop(0)
        elif opt == "--tls":
            tls = args[:4]
            args = args[4:]
        elif opt == "--version":
            version = args.pop(0)
        else:
            sys.exit("unknown option " + opt)
    if len(args) != 2:
        sys.exit(__doc__)
    fake = Fake(args[0], args[1], version)
    threads = []
    if unix:
        if os.path.exists(unix):
            os.unlink(unix)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(unix)
        s.listen(16)
        threads.append(threading.Thread(target=accept_loop, args=(fake, s),
                                        daemon=True))
    if tls:
        port, cert, key, ca = tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(port)))
        s.listen(16)
        threads.append(threading.Thread(
            target=accept_loop,
            args=(fake, s, lambda c: ctx.wrap_socket(c, server_side=True)),
            daemon=True))
    for t in threads:
        t.start()
    fake.log("listening")
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
