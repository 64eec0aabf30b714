-- dnsbl.lua: refuse clients listed in a DNS block list, and HELO names
-- that are bare addresses or that claim to be us.
--
--	filter "dnsbl" lua "/etc/smtpfd/dnsbl.lua" timeout 15s on-failure proceed
--
-- The engine is chrooted and cannot read /etc/resolv.conf: name the
-- resolver (a local caching resolver is best: block lists refuse
-- queries from big public resolvers).

dns.nameserver("127.0.0.1")

local ZONE = "zen.spamhaus.org"
local OURS = regex.compile([[(^|\.)example\.org$]], "i")
local ADDRESS = regex.compile([[^\[?[0-9.:a-f]+\]?$]], "i")
local IPV4 = regex.compile([[^(\d+)\.(\d+)\.(\d+)\.(\d+)$]])

-- The list's answer for an IPv4 address (nil: not listed, or IPv6).
local function listed(addr)
	local a, b, c, d = IPV4:match(addr)
	if a == nil then
		return nil
	end
	local answers, err = dns.lookup(table.concat({ d, c, b, a, ZONE }, "."))
	if answers == nil then
		if err ~= "name does not exist" then
			log.warn("lookup in", ZONE, "failed:", err)
		end
		return nil
	end
	return answers[1]
end

function on_connect(session, rdns, src)
	local code = listed(session.addr)
	if code ~= nil then
		log.info("client", session.addr, "listed in", ZONE, "as", code)
		return disconnect("554 5.7.1 Service unavailable; client [" ..
		    session.addr .. "] blocked using " .. ZONE)
	end
	session.store.rdns = rdns
end

local function check_helo(session, name)
	if ADDRESS:test(name) then
		return reject("550 5.7.1 Give a host name, not an address")
	end
	if OURS:test(name) then
		return reject("550 5.7.1 You are not me")
	end
end

on_helo = check_helo
on_ehlo = check_helo

-- Observers see every transaction: count them per session.
function on_tx_commit(session, msgid, size)
	session.store.messages = (session.store.messages or 0) + 1
	log.info("message", msgid, "of", size, "bytes, number",
	    session.store.messages, "of this session")
end
