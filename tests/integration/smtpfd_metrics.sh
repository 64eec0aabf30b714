#!/bin/sh
# The Prometheus metrics listener (metrics on ADDRESS port N): GET
# /metrics in the text exposition format 0.0.4 (every line parses, HELP
# and TYPE for each family, label values escaped, histograms cumulative
# up to +Inf = _count), the counters of show filters and show stats
# moving with real sessions through a proxy listener in front of mtad,
# the same figures as smtpfctl show stats, and the HTTP edges: 404, 405,
# 400 (garbage, another version, a bad header, 8 KB of headers), a
# client that says nothing, too many clients (they wait), a listener on 127.0.0.1
# only; the grammar and what a reload may not change.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 3)
P=$1 D=$2 M=$3
SOCK="$TMP/smtpfd.sock"

downstream_mtad_conf "$D"

# smtpfd_conf METRICS-PORT
smtpfd_conf() {
	cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$SOCK"
hostname filter.test.example
metrics on localhost port $1
filter "helo" phase helo match helo regex "^bad" reject "550 5.7.1 bad helo"
filter "junk" phase mail-from match mail-from regex "^spammer@" junk
filter "odd \\"name\\\\" phase rcpt-to match regex "^nobody@" reject "550 5.1.1 no such user"
chain "main" { "helo", "junk", "odd \\"name\\\\" }
proxy on 127.0.0.1 port $P chain "main" forward to smtp://127.0.0.1:$D xclient
CONF
}
smtpfd_conf "$M"

# The grammar.
check_conf() {	# DESCRIPTION STATEMENT EXPECTED-ERROR
	printf 'user "%s"\ncontrol socket "%s"\n%s\n' "$fuser" "$SOCK" "$2" \
	    >"$TMP/bad.conf"
	if out=$("$BIN/smtpfd" -n -f "$TMP/bad.conf" 2>&1); then
		not_ok "$1" "accepted: $2"
	elif echo "$out" | grep -q -- "$3"; then
		ok "$1"
	else
		not_ok "$1" "$out"
	fi
}
check "smtpfd -n accepts metrics on localhost port N" \
    "$BIN/smtpfd" -n -f "$TMP/smtpfd.conf"
check_conf "metrics needs a port" "metrics on 127.0.0.1" "expected .port"
check_conf "metrics needs an IP address" "metrics on example.org port 9100" \
    "not an IP address"
check_conf "one metrics listener only" \
    "metrics on 127.0.0.1 port 9100
metrics on ::1 port 9101" "only one listener"

start_daemon mtad -f "$TMP/mtad.conf"
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "mtad and smtpfd start"
	done_testing
	exit 1
fi

check "the metrics listener is on 127.0.0.1 only" \
    sh -c '[ "$(ss -Htln "sport = :$1" | awk "{ print \$4 }")" = "127.0.0.1:$1" ]' \
    sh "$M"

python3 - "$P" "$M" "$BIN/smtpfctl" "$SOCK" >"$TMP/check.tap" 2>&1 <<'PY'
import re, socket, subprocess, sys, time, urllib.error, urllib.request

P, M, CTL, SOCK = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
n = 0
def check(desc, cond, *diag):
    global n
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, desc))
    if not cond:
        for d in diag:
            print("#   " + str(d).replace("\n", "\n#   "))


def fetch(path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (M, path),
            timeout=10) as r:
        return r.status, dict(r.headers), r.read().decode()

def raw(data, shut=False):
    """Send bytes, read the whole response (the server closes)."""
    s = socket.create_connection(("127.0.0.1", M), timeout=10)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/1.1 ") else 0
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body

def status_of(data, shut=False):
    try:
        return raw(data, shut)
    except OSError as e:
        return 0, {}, str(e).encode()

# The text format, strictly (version 0.0.4).
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s(?:,%s)*)?\})? (\S+)$" % (NAME, LABEL, LABEL))
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')

def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)

def parse(text):
    """{(name, frozenset(labels)): value}, families {name: type}, errors"""
    samples, types, helps, errors, seen = {}, {}, {}, [], []
    if not text.endswith("\n"):
        errors.append("no final newline")
    current = None
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            f = line.split(" ", 3)
            if len(f) < 4 or not re.match("^%s$" % NAME, f[2]) or f[2] in helps:
                errors.append("bad or repeated HELP: " + line)
            helps[f[2]] = f[3] if len(f) > 3 else ""
            continue
        if line.startswith("# TYPE "):
            f = line.split(" ")
            if len(f) != 4 or f[3] not in ("counter", "gauge", "histogram",
                    "summary", "untyped") or f[2] in types:
                errors.append("bad or repeated TYPE: " + line)
            elif f[2] in seen:
                errors.append("TYPE after samples: " + line)
            types[f[2]] = f[3]
            current = f[2]
            continue
        if line.startswith("#") or line == "":
            errors.append("unexpected line: %r" % line)
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append("sample does not parse: %r" % line)
            continue
        name, value = m.group(1), m.group(3)
        try:
            v = float(value)
        except ValueError:
            errors.append("bad value: %r" % line)
            continue
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        if family != current:
            errors.append("sample outside its family's group: %r" % line)
        if family not in types or family not in helps:
            errors.append("no HELP/TYPE before: %r" % line)
        if seen and seen[-1] != family and family in seen:
            errors.append("family split in two groups: %r" % line)
        if not seen or seen[-1] != family:
            seen.append(family)
        labels = frozenset((k, unescape(v2)) for k, v2 in
                           LABEL_RE.findall(m.group(2) or ""))
        if (name, labels) in samples:
            errors.append("duplicate sample: %r" % line)
        samples[(name, labels)] = v
    for name, t in types.items():
        if name not in seen:
            continue
        if t == "counter" and not name.endswith("_total"):
            errors.append("counter without _total: " + name)
    # Histograms: per series, buckets cumulative, ending with +Inf = _count.
    for name, t in types.items():
        if t != "histogram":
            continue
        series = {}
        for (sn, labels), v in samples.items():
            if sn == name + "_bucket":
                d = dict(labels)
                le = d.pop("le")
                series.setdefault(frozenset(d.items()), []).append(
                    (float(le), v, le))
        for key, buckets in series.items():
            buckets.sort()
            vals = [b[1] for b in buckets]
            if vals != sorted(vals):
                errors.append("%s %s: buckets not cumulative" % (name, dict(key)))
            if buckets[-1][2] != "+Inf":
                errors.append("%s %s: no +Inf bucket" % (name, dict(key)))
            count = samples.get((name + "_count", key))
            if count is None or (name + "_sum", key) not in samples:
                errors.append("%s %s: no _sum or _count" % (name, dict(key)))
            elif count != vals[-1]:
                errors.append("%s %s: +Inf %s != _count %s" % (name, dict(key), vals[-1], count))
    return samples, types, errors

def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))

def smtp(cmds, data=None, quit=True):
    s = socket.create_connection(("127.0.0.1", P), timeout=10)
    f = s.makefile("rb")
    def reply():
        while True:
            l = f.readline().decode().strip()
            if l[3:4] != "-":
                return l
    out = [reply()]
    for c in cmds:
        s.sendall(c.encode() + b"\r\n")
        out.append(reply())
        if c == "DATA" and out[-1].startswith("354"):
            s.sendall(data.encode() + b"\r\n.\r\n")
            out.append(reply())
    if quit:
        s.sendall(b"QUIT\r\n")
        out.append(reply())
        s.close()
        return out
    return out, s

# Too many clients at once: the 17th waits until one of 16 leaves.
idle = [socket.create_connection(("127.0.0.1", M)) for _ in range(16)]
time.sleep(0.3)
s17 = socket.create_connection(("127.0.0.1", M), timeout=10)
s17.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
s17.settimeout(1)
try:
    early = s17.recv(100)
except socket.timeout:
    early = None
check("a 17th client at once waits", early is None, early)
idle.pop().close()
s17.settimeout(10)
got = b""
try:
    while True:
        b = s17.recv(65536)
        if not b:
            break
        got += b
except OSError as e:
    got += str(e).encode()
check("... and is answered when one leaves", got.startswith(b"HTTP/1.1 200 "), got[:100])
s17.close()
for s in idle:
    s.close()
ok = False
for _ in range(50):
    st, h, body = status_of(b"GET /metrics HTTP/1.1\r\n\r\n")
    if st == 200:
        ok = True
        break
    time.sleep(0.1)
check("after they leave, 200 again", ok, st)

# A silent client: the listener closes it after 10 s.
silent = socket.create_connection(("127.0.0.1", M))
silent_at = time.monotonic()

status, hdrs, text = fetch()
check("GET /metrics: 200", status == 200, status)
check("Content-Type: text/plain; version=0.0.4",
      hdrs.get("Content-Type") == "text/plain; version=0.0.4", hdrs)
check("Connection: close", hdrs.get("Connection") == "close", hdrs)
before, types, errors = parse(text)
check("before: every line parses, HELP and TYPE, histograms sound",
      not errors, *errors[:10])
for fam, t in (("smtpfd_filter_calls_total", "counter"),
               ("smtpfd_filter_decisions_total", "counter"),
               ("smtpfd_filter_failures_total", "counter"),
               ("smtpfd_filter_timeouts_total", "counter"),
               ("smtpfd_filter_restarts_total", "counter"),
               ("smtpfd_filter_latency_seconds", "histogram"),
               ("smtpfd_sessions", "gauge"),
               ("smtpfd_sessions_total", "counter"),
               ("smtpfd_messages_accepted_total", "counter"),
               ("smtpfd_messages_refused_total", "counter"),
               ("smtpfd_sessions_failed_total", "counter")):
    check("family %s is a %s" % (fam, t), types.get(fam) == t, types.get(fam))
check("calls of each filter, with its kind",
      all(get(before, "smtpfd_filter_calls_total", filter=f, kind="rule") is not None
          for f in ("helo", "junk", 'odd "name\\')), text[:2000])
check("a filter name with a quote and a backslash is escaped",
      'filter="odd \\"name\\\\"' in text, text[:2000])
check("latency buckets from le=0.0001 to +Inf",
      get(before, "smtpfd_filter_latency_seconds_bucket", filter="helo", le="0.0001") is not None
      and get(before, "smtpfd_filter_latency_seconds_bucket", filter="helo", le="+Inf") is not None)

# Traffic: an accepted message, a junked one, a refused HELO, a refused
# recipient.  A session stays open while the metrics are read.
r1 = smtp(["EHLO client.example", "MAIL FROM:<a@b.example>",
           "RCPT TO:<nobody@test.example>", "RCPT TO:<u@test.example>",
           "DATA"], "Subject: metrics one\r\n\r\nhello")
check("a message through smtpfd", r1[-2].startswith("250") and
      r1[3].startswith("550 5.1.1"), r1)
r2 = smtp(["EHLO client.example", "MAIL FROM:<spammer@b.example>",
           "RCPT TO:<u@test.example>", "DATA"], "Subject: metrics two\r\n\r\nbuy")
check("a junked message through smtpfd", r2[-2].startswith("250"), r2)
r3 = smtp(["HELO bad.example"])
check("a bad HELO refused", r3[1].startswith("550 5.7.1 bad helo"), r3)
open_reply, open_sock = smtp(["EHLO still.example"], quit=False)

status, _, text = fetch()
after, _, errors = parse(text)
check("after: every line parses, HELP and TYPE, histograms sound",
      not errors, *errors[:10])
def delta(name, **labels):
    a = get(after, name, **labels)
    b = get(before, name, **labels)
    return None if a is None or b is None else a - b
check("smtpfd_sessions_total +4", delta("smtpfd_sessions_total") == 4,
      delta("smtpfd_sessions_total"))
check("smtpfd_sessions counts the open session",
      get(after, "smtpfd_sessions") >= 1, get(after, "smtpfd_sessions"))
check("smtpfd_messages_accepted_total +2",
      delta("smtpfd_messages_accepted_total") == 2,
      delta("smtpfd_messages_accepted_total"))
check("smtpfd_messages_refused_total and sessions_failed_total unchanged",
      delta("smtpfd_messages_refused_total") == 0 and
      delta("smtpfd_sessions_failed_total") == 0)
check("helo: reject +1", delta("smtpfd_filter_decisions_total", filter="helo",
      decision="reject") == 1)
check("helo: calls +1 (the HELO; EHLO is another phase)",
      delta("smtpfd_filter_calls_total", filter="helo", kind="rule") == 1,
      delta("smtpfd_filter_calls_total", filter="helo", kind="rule"))
check("the oddly named filter: calls +3 (three recipients)",
      delta("smtpfd_filter_calls_total", filter='odd "name\\', kind="rule") == 3,
      delta("smtpfd_filter_calls_total", filter='odd "name\\', kind="rule"))
check("junk: junk +1, proceed +1",
      delta("smtpfd_filter_decisions_total", filter="junk", decision="junk") == 1
      and delta("smtpfd_filter_decisions_total", filter="junk", decision="proceed") == 1)
check("the oddly named filter: reject +1",
      delta("smtpfd_filter_decisions_total", filter='odd "name\\',
            decision="reject") == 1)
check("latency: _count +1 for helo",
      delta("smtpfd_filter_latency_seconds_count", filter="helo") == 1)
check("latency: _sum moved for helo",
      delta("smtpfd_filter_latency_seconds_sum", filter="helo") > 0)
check("no failures, timeouts or restarts",
      all(v == 0 for (nm, _), v in after.items() if nm in (
          "smtpfd_filter_failures_total", "smtpfd_filter_timeouts_total",
          "smtpfd_filter_restarts_total")))

# The same figures as smtpfctl show stats (nothing runs in between).
stats = dict(l.split("=", 1) for l in subprocess.run(
    [CTL, "-s", SOCK, "show", "stats"], capture_output=True, text=True,
    timeout=10).stdout.split())
_, _, text = fetch()
now, _, _ = parse(text)
same = [(k, stats.get(k), get(now, m)) for k, m in (
    ("sessions", "smtpfd_sessions"), ("sessions.total", "smtpfd_sessions_total"),
    ("messages.accepted", "smtpfd_messages_accepted_total"),
    ("messages.refused", "smtpfd_messages_refused_total"),
    ("sessions.failed", "smtpfd_sessions_failed_total"),
    ("smtpf.links", "smtpfd_smtpf_links"))]
check("show stats and /metrics agree",
      all(s is not None and float(s) == v for _, s, v in same), same)
open_sock.close()

# HTTP edges.
st, h, body = status_of(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
check("another path: 404", st == 404, st, body)
try:
    urllib.request.urlopen("http://127.0.0.1:%d/" % M, timeout=10)
    code = 200
except urllib.error.HTTPError as e:
    code = e.code
check("urllib GET /: 404", code == 404, code)
try:
    urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%d/metrics" % M, data=b"x" * 100000), timeout=10)
    code = 200
except urllib.error.HTTPError as e:
    code = e.code
check("POST /metrics with a body: 405", code == 405, code)
st, h, body = status_of(b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
check("DELETE /metrics: 405 with Allow: GET", st == 405 and h.get("allow") == "GET", st, h)
st, h, body = status_of(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
check("HEAD /metrics: 405, no body", st == 405 and body == b"", st, body)
st, h, body = status_of(b"GET /metrics HTTP/1.0\n\n")
check("HTTP/1.0 with bare LF: 200", st == 200 and b"smtpfd_sessions_total" in body, st)
st, h, body = status_of(b"\r\nGET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
check("a query string, an empty line first: 200", st == 200, st)
st, h, body = status_of(b"GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: x\r\n\r\n")
check("absolute-form target: 200", st == 200, st)
for desc, req in (
        ("garbage", b"hello there\r\n\r\n"),
        ("no version", b"GET /metrics\r\n\r\n"),
        ("HTTP/2.0", b"GET /metrics HTTP/2.0\r\n\r\n"),
        ("two spaces", b"GET  /metrics HTTP/1.1\r\n\r\n"),
        ("a header without a colon", b"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n"),
        ("a space before the colon", b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n"),
        ("a name alone on its line", b"GET /metrics HTTP/1.0\nHost\n: x\n\n"),
        ("a folded header", b"GET /metrics HTTP/1.1\r\nHost: x\r\n y\r\n\r\n"),
        ("a NUL", b"GET /metrics HTTP/1.1\r\nHost: \0\r\n\r\n"),
        ("a bare CR", b"GET /metrics HTTP/1.1\rHost: x\r\n\r\n"),
        ("a path without /", b"GET metrics HTTP/1.1\r\n\r\n"),
        ("8 KB of headers", b"GET /metrics HTTP/1.1\r\n" +
             b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n"),
        ("8 KB without a line end", b"G" * 9000)):
    st, h, body = status_of(req)
    check("400 for %s" % desc, st == 400, st, body)
st, h, body = status_of(b"GET /metrics HTTP/1.1\r\n", shut=True)
check("a client that leaves mid-request gets nothing", st == 0 and body == b"", st, body)

# Only 127.0.0.1 listens.
try:
    socket.create_connection(("127.0.0.2", M), timeout=5).close()
    refused = False
except OSError:
    refused = True
check("127.0.0.2 is refused", refused)

# The silent client is closed after 10 s.
silent.settimeout(15)
try:
    got = silent.recv(100)
except OSError as e:
    got = str(e)
waited = time.monotonic() - silent_at
check("a silent client is closed after 10 s, without a word",
      got == b"" and waited >= 9.5, got, waited)
print("1..%d" % n)
PY
status=$?
tap_relay "" <"$TMP/check.tap"
check "the checker ran to its end" [ "$status" -eq 0 ]
[ "$status" -eq 0 ] || sed 's/^/# /' "$TMP/check.tap" | tail -n 20

# What only a restart changes.
smtpfd_conf "$((M + 1))"
out=$("$BIN/smtpfctl" -s "$SOCK" reload 2>&1)
check "reload refuses another metrics port" \
    sh -c 'echo "$1" | grep -q "metrics listener changed"' sh "$out"
smtpfd_conf "$M"
check "reload with the same listener" "$BIN/smtpfctl" -s "$SOCK" reload
check "metrics still answer after the reload" python3 -c '
import sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10)
sys.exit(0 if b"smtpfd_filter_calls_total{filter=\"helo\",kind=\"rule\"}" in r.read() else 1)' "$M"

check "smtpfd is still running" is_running "$fpid"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
