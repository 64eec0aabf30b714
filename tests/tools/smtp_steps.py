#!/usr/bin/env python3
"""One SMTP session, step by step, for the filter tests.

    smtp_steps.py PORT STEP...

A STEP is an SMTP command line ("EHLO client.example"), or
  =CONTENT	the message content, "\\n" between lines, then "."
		(the reply to the "." is printed as ". -> REPLY")
  =LINES	content lines without the final "." (nothing is read)
  .		the final "." alone
  @FILE		wait (at most 20 s) until FILE exists
  !FILE		create FILE (tell the test where we are)
Each step's reply is printed as "STEP -> REPLY" (the last line of a
multi-line reply); "CLOSED" when the server closed the connection.
The greeting is printed as "greeting -> REPLY".
"""
import os
import socket
import sys
import time


def main():
    port = int(sys.argv[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")

    def reply(step):
        while True:
            try:
                line = f.readline().decode(errors="replace").rstrip("\r\n")
            except OSError:
                # A reset: the server closed with our command unread.
                line = ""
            if not line:
                print(step, "-> CLOSED", flush=True)
                sys.exit(0)
            if line[3:4] != "-":
                print(step, "->", line, flush=True)
                return line

    reply("greeting")
    for step in sys.argv[2:]:
        if step.startswith("@"):
            for _ in range(200):
                if os.path.exists(step[1:]):
                    break
                time.sleep(0.1)
            continue
        if step.startswith("!"):
            open(step[1:], "w").close()
            continue
        try:
            if step.startswith("=LINES"):
                for line in step[6:].split("\\n"):
                    s.sendall(line.encode() + b"\r\n")
                continue
            if step.startswith("="):
                for line in step[1:].split("\\n"):
                    s.sendall(line.encode() + b"\r\n")
                s.sendall(b".\r\n")
                reply(".")
                continue
            s.sendall(step.encode() + b"\r\n")
        except OSError:
            print(step, "-> CLOSED", flush=True)
            sys.exit(0)
        reply(step)


if __name__ == "__main__":
    main()
