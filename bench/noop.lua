-- noop.lua: a Lua filter with a hook on every phase that lets
-- everything through, for bench/smtpfd-filters.sh.  What the engine
-- pays for a Lua filter, not what a script does: every hook returns at
-- once.
--
--	filter "lua" lua "/path/to/bench/noop.lua"
--
-- on_commit makes the filter hold the message (SPEC 2.4: a filter with
-- on_commit asks for data-line too, keeps the message's lines, builds
-- the message object and writes the message out after the hook); it
-- does not call the message's methods.  BENCH_NO_COMMIT, set by the
-- benchmark when it loads a copy of this file, leaves on_commit out:
-- the streaming cost alone.

function on_connect(session, rdns, src) end
function on_helo(session, name) end
function on_ehlo(session, name) end
function on_starttls(session) end
function on_auth(session, args) end
function on_mail_from(session, address) end
function on_rcpt_to(session, address) end
function on_data(session) end
function on_data_line(session, line) return line end
function on_rset(session) end
function on_quit(session) end
function on_noop(session) end

if not BENCH_NO_COMMIT then
	function on_commit(session, message) end
end
