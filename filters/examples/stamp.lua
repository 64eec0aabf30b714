-- stamp.lua: the content, as it streams and at commit.
--
--	filter "stamp" lua "/etc/smtpfd/stamp.lua" memory 128M
--
-- on_data_line masks card numbers in every line as the message goes
-- by; on_commit then sees the whole message: it refuses executables,
-- tags the subject of messages from outside, adds a header, and puts a
-- footer under plain-text bodies.

local CARD = regex.compile([[\b(\d{4})[ -]?\d{4}[ -]?\d{4}[ -]?(\d{4})\b]])
local EXE = regex.compile([[name="?[^"]*\.(exe|scr|bat|com|pif)"?]], "i")
local INSIDE = regex.compile([[^(127\.|10\.|192\.168\.)]])

function on_data_line(session, line)
	return (CARD:gsub(line, "$1-XXXX-XXXX-$2"))
end

function on_commit(session, message)
	local body = message:body()
	if EXE:test(body) then
		return reject("554 5.7.1 Executable attachments are refused")
	end
	if not INSIDE:test(session.addr) then
		local subject = message:header("Subject") or ""
		if not subject:find("[EXTERNAL]", 1, true) then
			message:change_header("Subject", "[EXTERNAL] " .. subject)
		end
	end
	message:add_header("X-Filtered-By", "smtpfd " .. session.filter ..
	    " (" .. session.id .. ")")
	local ctype = message:header("Content-Type") or "text/plain"
	if ctype:lower():find("^text/plain") then
		message:set_body(body .. "-- \nScanned by smtpfd.\n")
	end
end
