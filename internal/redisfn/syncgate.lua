#!lua name=syncgate
-- syncgate {{VERSION}}: history streams and live channels of syncgate gateways.
-- Installed by the gateway (FUNCTION LOAD REPLACE); see docs/redis.md.
local VERSION = '{{VERSION}}'
local MAXLEN = {{MAXLEN}}
local TTL_MS = {{TTL_MS}}
local OWNER = '{{OWNER}}'
local MAX_EVENT = 262144

local function fail(msg)
  return redis.error_reply('ERR syncgate: ' .. msg)
end

local function project_of(key)
  local p = string.match(key, '^sg:{([%w_%-]+)}:epoch$')
  if p and #p <= 64 then return p end
  return nil
end

local function valid_collection(c)
  return type(c) == 'string' and #c >= 1 and #c <= 128 and string.match(c, '^[%w_.%-]+$') ~= nil
end

-- iso formats a TIME reply as RFC 3339 in UTC with microseconds.
local function iso(t)
  local secs, us = tonumber(t[1]), tonumber(t[2])
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, us)
end

-- epoch returns the project's epoch, creating it on first use. A Redis that
-- lost its data creates a new one, so offsets from before never match.
local function epoch(key, t)
  local e = redis.call('GET', key)
  if not e then
    e = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', key, e)
  end
  return e
end

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms then return nil end
  return tonumber(ms), tonumber(seq)
end

local function id_less(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am < bm or (am == bm and as < bs)
end

-- trim drops entries beyond MAXLEN or older than minid (ms) from a stream
-- and records the newest dropped id in the hash tkey, field coll: resume
-- from an offset older than it cannot be complete. (XINFO's
-- max-deleted-entry-id does not count trimmed entries.)
local function trim(key, tkey, coll, minid)
  local dropped = nil
  local n = redis.call('XLEN', key)
  if n > MAXLEN then
    local r = redis.call('XRANGE', key, '-', '+', 'COUNT', n - MAXLEN)
    dropped = r[#r][1]
    redis.call('XTRIM', key, 'MAXLEN', MAXLEN)
  end
  if minid > 0 then
    -- Forwards first: XREVRANGE from before the oldest entry walks the
    -- whole stream (12 ms at 100,000 entries on Redis 7.0), and this runs
    -- on every publish, when nothing is that old.
    local bound = '(' .. minid .. '-0'
    if #redis.call('XRANGE', key, '-', bound, 'COUNT', 1) > 0 then
      local r = redis.call('XREVRANGE', key, bound, '-', 'COUNT', 1)
      dropped = r[1][1]
      redis.call('XTRIM', key, 'MINID', minid)
    end
  end
  if dropped then redis.call('HSET', tkey, coll, dropped) end
end

-- Strict JSON, as Go's encoding/json reads it. cjson alone also takes
-- 0x10, 01, +1, 1., nan, inf and raw control characters, and keeps only
-- the last of duplicate fields: events it accepts that Go cannot decode
-- would be skipped by every gateway.
local function ws(s, i)
  return string.find(s, '[^ \t\n\r]', i) or (#s + 1)
end

local function scan_string(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\%c]', j)
    if not k then return nil, 'unterminated string' end
    local c = string.byte(s, k)
    if c == 34 then return k + 1 end
    if c == 92 then
      local e = string.sub(s, k + 1, k + 1)
      if e == 'u' then
        if not string.find(s, '^%x%x%x%x', k + 2) then return nil, 'bad \\u escape' end
        j = k + 6
      elseif e ~= '' and string.find('"\\/bfnrt', e, 1, true) then
        j = k + 2
      else
        return nil, 'bad escape in a string'
      end
    elseif c == 127 then
      j = k + 1
    else
      return nil, 'control character in a string'
    end
  end
end

local function scan_number(s, i)
  local _, e = string.find(s, '^%-?0', i)
  if not e then _, e = string.find(s, '^%-?[1-9]%d*', i) end
  if not e then return nil, 'unexpected character at byte ' .. i end
  local _, f = string.find(s, '^%.%d+', e + 1)
  if f then e = f end
  _, f = string.find(s, '^[eE][+-]?%d+', e + 1)
  if f then e = f end
  return e + 1
end

local MAX_DEPTH = 1000

-- scan_value checks the JSON value at byte i and returns the byte after it.
-- When fields is a table and the value is an object, it records each field
-- (raw name between the quotes) as {value start, value end + 1} and refuses
-- duplicates.
local function scan_value(s, i, depth, fields)
  i = ws(s, i)
  local c = string.sub(s, i, i)
  local err
  if c == '{' or c == '[' then
    if depth >= MAX_DEPTH then return nil, 'nested too deeply' end
    local close = c == '{' and '}' or ']'
    i = ws(s, i + 1)
    if string.sub(s, i, i) == close then return i + 1 end
    while true do
      local name
      if c == '{' then
        if string.sub(s, i, i) ~= '"' then return nil, 'expected a field name at byte ' .. i end
        local e
        e, err = scan_string(s, i)
        if not e then return nil, err end
        name = string.sub(s, i + 1, e - 2)
        i = ws(s, e)
        if string.sub(s, i, i) ~= ':' then return nil, 'expected : at byte ' .. i end
        i = i + 1
      end
      local start = ws(s, i)
      i, err = scan_value(s, start, depth + 1, nil)
      if not i then return nil, err end
      if fields and name then
        if fields[name] then return nil, 'duplicate field ' .. string.sub(name, 1, 64) end
        fields[name] = {start, i}
      end
      i = ws(s, i)
      local d = string.sub(s, i, i)
      if d == close then return i + 1 end
      if d ~= ',' then return nil, 'expected , or ' .. close .. ' at byte ' .. i end
      i = ws(s, i + 1)
    end
  elseif c == '"' then
    return scan_string(s, i)
  elseif c == 't' or c == 'f' or c == 'n' then
    for _, lit in ipairs({'true', 'false', 'null'}) do
      if string.sub(s, i, i + #lit - 1) == lit then return i + #lit end
    end
    return nil, 'unexpected character at byte ' .. i
  end
  return scan_number(s, i)
end

local EVENT_FIELDS = {type = true, project = true, collection = true, documentId = true, document = true,
  oldDocument = true, actor = true, audience = true, timestamp = true}

local function days_in(y, m)
  if m == 2 then
    if (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 then return 29 end
    return 28
  end
  if m == 4 or m == 6 or m == 9 or m == 11 then return 30 end
  return 31
end

-- valid_timestamp accepts RFC 3339 as Go's time.Time reads it from JSON
-- (the raw string, escapes not allowed): 2026-11-22T10:00:00.123Z or an
-- offset like +02:00, at most nine fraction digits.
local function valid_timestamp(raw)
  local y, mo, d, h, mi, s, rest = string.match(raw,
    '^"(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)"$')
  if not y then return false end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > days_in(y, mo) or h > 23 or mi > 59 or s > 59 then return false end
  local frac = string.match(rest, '^%.(%d+)')
  if frac then
    if #frac > 9 then return false end
    rest = string.sub(rest, #frac + 2)
  end
  if rest == 'Z' then return true end
  local oh, om = string.match(rest, '^[+-](%d%d):(%d%d)$')
  return oh ~= nil and tonumber(oh) <= 23 and tonumber(om) <= 59
end

-- valid_utf8 reports whether s is well-formed UTF-8, as Go's utf8.Valid
-- (no overlong forms, no surrogates, nothing past U+10FFFF). Go refuses
-- anything else, and raw bytes in a document would reach clients as an
-- invalid WebSocket text frame, which browsers fail the connection for.
local function valid_utf8(s)
  local i = 1
  while true do
    i = string.find(s, '[\128-\255]', i)
    if not i then return true end
    local c = string.byte(s, i)
    local n, lo, hi = 0, 128, 191
    if c >= 194 and c <= 223 then n = 1
    elseif c == 224 then n, lo = 2, 160
    elseif c == 237 then n, hi = 2, 159
    elseif c >= 225 and c <= 239 then n = 2
    elseif c == 240 then n, lo = 3, 144
    elseif c >= 241 and c <= 243 then n = 3
    elseif c == 244 then n, hi = 3, 143
    else return false end
    for k = 1, n do
      local b = string.byte(s, i + k)
      if not b or b < lo or b > hi then return false end
      lo, hi = 128, 191
    end
    i = i + n + 1
  end
end

-- check_event returns nil when Go decodes raw into a valid syncgate.Event
-- (syncgate.DecodeEvent and Event.Validate), or why not.
local function check_event(raw, ev)
  if not valid_utf8(raw) then return 'not valid UTF-8' end
  local fields = {}
  local i, err = scan_value(raw, 1, 0, fields)
  if not i then return 'not valid JSON: ' .. err end
  if ws(raw, i) <= #raw then return 'trailing data after the event object' end
  for name, span in pairs(fields) do
    if not EVENT_FIELDS[name] then
      if name == 'offset' then return 'offset is set by syncgate, leave it out' end
      return 'unknown field "' .. string.sub(name, 1, 64) .. '" (names are case-sensitive)'
    end
  end
  for _, name in ipairs({'documentId', 'actor'}) do
    local v = ev[name]
    if v ~= nil and (type(v) ~= 'string' or #v > 256) then
      return name .. ' must be a string of at most 256 bytes'
    end
  end
  if fields.timestamp and not valid_timestamp(string.sub(raw, fields.timestamp[1], fields.timestamp[2] - 1)) then
    return 'timestamp must be an RFC 3339 string like 2026-11-22T10:00:00.123Z'
  end
  if fields.audience then
    local a = fields.audience
    local afields = {}
    if string.sub(raw, a[1], a[1]) ~= '{' or not scan_value(raw, a[1], 0, afields) then
      return 'audience must be an object {"users":[…],"roles":[…]}'
    end
    local n = 0
    for name, span in pairs(afields) do
      if name ~= 'users' and name ~= 'roles' then
        return 'audience has unknown field "' .. string.sub(name, 1, 64) .. '"; want users and roles'
      end
      local list = ev.audience[name]
      if string.sub(raw, span[1], span[1]) ~= '[' or type(list) ~= 'table' then
        return 'audience.' .. name .. ' must be an array of strings'
      end
      for _, v in ipairs(list) do
        if type(v) ~= 'string' then return 'audience.' .. name .. ' must be an array of strings' end
      end
      n = n + #list
    end
    if n == 0 then return 'audience names no users and no roles (omit it to reach everyone)' end
    if n > 1000 then return 'audience names ' .. n .. ' users and roles, at most 1000' end
  end
  return nil
end

-- Positions (syncgate_publish_at, for change capture): a source, such as
-- a PostgreSQL slot, records in sg:{<project>}:pos:<source> the position
-- of the newest event it published to the project, in the same call as the
-- publish, so a source that restarts and sends events again has those at
-- or before the recorded position skipped. A position is 24 hex digits;
-- positions grow in the source's order.
local function valid_position(p)
  return type(p) == 'string' and #p == 24 and string.match(p, '^%x+$') ~= nil
end

local function position_less(a, b)
  local ah, bh = tonumber(string.sub(a, 1, 12), 16), tonumber(string.sub(b, 1, 12), 16)
  if ah ~= bh then return ah < bh end
  return tonumber(string.sub(a, 13), 16) < tonumber(string.sub(b, 13), 16)
end

-- positions_skip marks the events at or before their project's recorded
-- position and records the newest position of each project.
local function positions_skip(at, evs)
  local stored, newest, skip = {}, {}, {}
  for i, e in ipairs(evs) do
    local key = 'sg:{' .. e.p .. '}:pos:' .. at.source
    if stored[key] == nil then stored[key] = redis.call('GET', key) or false end
    local pos = at.pos[i]
    local s = stored[key]
    if s and not position_less(s, pos) then
      skip[i] = true
    else
      stored[key] = pos
      newest[key] = pos
    end
  end
  for key, pos in pairs(newest) do redis.call('SET', key, pos) end
  return skip
end

-- syncgate_publish KEYS: project keys sg:{<project>}:epoch; ARGV: events as
-- JSON objects. Appends each event to its collection stream and to the
-- project stream, trims both, publishes on both channels, and returns each
-- event's offset in its collection stream. Every event is checked before
-- anything is written: an error writes nothing.
local function publish_events(keys, args, strict, at)
  if #keys == 0 then return fail('pass each event project key sg:{<project>}:epoch as a key') end
  if #args == 0 then return fail('pass at least one event') end
  local projects = {}
  for _, k in ipairs(keys) do
    local p = project_of(k)
    if not p then return fail('key ' .. string.sub(k, 1, 80) .. ' is not sg:{<project>}:epoch') end
    projects[p] = k
  end
  local evs = {}
  for i, raw in ipairs(args) do
    local where = 'event ' .. i .. ': '
    if #raw > MAX_EVENT then return fail(where .. 'larger than ' .. MAX_EVENT .. ' bytes') end
    local ok, ev = pcall(cjson.decode, raw)
    if not ok or type(ev) ~= 'table' or string.match(raw, '^%s*{') == nil then
      return fail(where .. 'not a JSON object')
    end
    if type(ev.type) ~= 'string' or #ev.type > 64 or string.match(ev.type, '^[a-z_:.]+$') == nil then
      return fail(where .. 'type must match [a-z_:.]{1,64}')
    end
    if type(ev.project) ~= 'string' or not projects[ev.project] then
      return fail(where .. 'its project has no key sg:{<project>}:epoch among the keys')
    end
    if not valid_collection(ev.collection) then
      return fail(where .. 'collection must match [A-Za-z0-9_.-]{1,128}')
    end
    if strict then
      local why = check_event(raw, ev)
      if why then return fail(where .. why) end
    elseif ev.offset ~= nil then
      return fail(where .. 'offset is set by syncgate, leave it out')
    end
    evs[i] = {p = ev.project, c = ev.collection, raw = raw, stamp = ev.timestamp == nil}
  end
  local skip = {}
  if at then skip = positions_skip(at, evs) end
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local ts = nil
  local touched = {}
  local out = {}
  for i, e in ipairs(evs) do
    if skip[i] then
      out[i] = ''
    else
      local raw = e.raw
      if e.stamp then
        ts = ts or iso(t)
        raw = string.gsub(raw, '^%s*{', '{"timestamp":"' .. ts .. '",', 1)
      end
      local prefix = 'sg:{' .. e.p .. '}:'
      local ep = epoch(projects[e.p], t)
      local ckey, pkey = prefix .. 's:' .. e.c, prefix .. 's:*'
      local cid = redis.call('XADD', ckey, '*', 'e', raw)
      local pid = redis.call('XADD', pkey, '*', 'e', raw)
      touched[ckey] = {tkey = prefix .. 'trimmed', coll = e.c}
      touched[pkey] = {tkey = prefix .. 'trimmed', coll = '*'}
      redis.call('SPUBLISH', prefix .. 'c:' .. e.c, ep .. ':' .. cid .. '\n' .. raw)
      redis.call('SPUBLISH', prefix .. 'c:*', ep .. ':' .. pid .. '\n' .. raw)
      out[i] = ep .. ':' .. cid
    end
  end
  local minid = now_ms - TTL_MS
  local tkeys = {}
  for key, t in pairs(touched) do
    trim(key, t.tkey, t.coll, minid)
    redis.call('PEXPIRE', key, TTL_MS)
    tkeys[t.tkey] = true
  end
  for tkey in pairs(tkeys) do
    if redis.call('EXISTS', tkey) == 1 then redis.call('PEXPIRE', tkey, TTL_MS) end
  end
  return out
end

-- syncgate_history KEYS: one project key; ARGV: collection (or *), the epoch
-- and stream id of since (both empty for none). Returns the epoch, the last
-- id, 1 when every event after since is still there (then its ids and
-- events follow) or 0. Kept for gateways of library version 2.
--
-- syncgate_history_page takes two more ARGV, the most events and the most
-- bytes of event JSON of one page (at least one event is returned when any
-- follows since), and returns the epoch, the last id, the recovered flag,
-- 1 when events after the page remain (else 0), then the page's ids and
-- events. Entries are read 16 at a time, so a page never holds the call's
-- memory beyond its bounds by more than 16 entries.
local function history(keys, args, paged)
  if #keys ~= 1 or not project_of(keys[1]) then return fail('pass one key sg:{<project>}:epoch') end
  local coll, since_epoch, since_id = args[1], args[2] or '', args[3] or ''
  if coll ~= '*' and not valid_collection(coll) then return fail('bad collection') end
  if since_epoch ~= '' and not parse_id(since_id) then return fail('bad since id') end
  local max_n, max_b = 0, 0
  if paged then
    max_n, max_b = tonumber(args[4]), tonumber(args[5])
    if not max_n or max_n < 1 or not max_b or max_b < 1 then return fail('bad page bounds') end
  end
  local t = redis.call('TIME')
  local ep = epoch(keys[1], t)
  local p = project_of(keys[1])
  local skey = 'sg:{' .. p .. '}:s:' .. coll
  -- Entries only ever leave a stream from its old end (trim), so the
  -- newest id is its last entry or, when trimming emptied it, the newest
  -- trimmed one.
  local maxdel = redis.call('HGET', 'sg:{' .. p .. '}:trimmed', coll) or '0-0'
  local last = maxdel
  local newest = redis.call('XREVRANGE', skey, '+', '-', 'COUNT', 1)
  if #newest > 0 then last = newest[1][1] end
  local out = {ep, last, 0}
  if paged then out[4] = 0 end
  if since_epoch == '' then
    out[3] = 1
    return out
  end
  if since_epoch ~= ep or id_less(last, since_id) or id_less(since_id, maxdel) then
    return out
  end
  out[3] = 1
  if since_id == last then return out end
  if not paged then
    local entries = redis.call('XRANGE', skey, '(' .. since_id, '+')
    for _, en in ipairs(entries) do
      out[#out + 1] = en[1]
      out[#out + 1] = en[2][2]
    end
    return out
  end
  local cursor, n, bytes = since_id, 0, 0
  while true do
    local want = math.min(max_n - n, 16)
    local entries = redis.call('XRANGE', skey, '(' .. cursor, '+', 'COUNT', want)
    for _, en in ipairs(entries) do
      local raw = en[2][2]
      if n > 0 and bytes + #raw > max_b then
        out[4] = 1
        return out
      end
      out[#out + 1] = en[1]
      out[#out + 1] = raw
      n, bytes, cursor = n + 1, bytes + #raw, en[1]
    end
    if #entries < want or cursor == last then return out end
    if n == max_n then
      out[4] = 1
      return out
    end
  end
end

local function publish(keys, args) return publish_events(keys, args, true) end

-- syncgate_publish_at ARGV: the source ([A-Za-z0-9_.-]{1,64}), then for
-- each event its position and the event; KEYS as syncgate_publish. Events
-- at or before their project's recorded position are skipped (offset '').
local function publish_at(keys, args)
  local source = args[1]
  if type(source) ~= 'string' or #source > 64 or string.match(source, '^[%w_.%-]+$') == nil then
    return fail('the source must match [A-Za-z0-9_.-]{1,64}')
  end
  if #args < 3 or (#args - 1) % 2 ~= 0 then return fail('pass the source, then a position and an event for each event') end
  local pos, raws = {}, {}
  for i = 2, #args, 2 do
    if not valid_position(args[i]) then return fail('event ' .. (#raws + 1) .. ': position must be 24 hex digits') end
    pos[#pos + 1] = args[i]
    raws[#raws + 1] = args[i + 1]
  end
  return publish_events(keys, raws, false, {source = source, pos = pos})
end

-- syncgate_publish_encoded is syncgate_publish for events that Go's
-- encoding/json encoded from a validated syncgate.Event (the gateway and the
-- publisher package): it skips the strict JSON scan, which costs about as
-- much as the rest of the call on large events. Not a public interface.
local function publish_encoded(keys, args) return publish_events(keys, args, false) end

local function version()
  return {VERSION, MAXLEN, TTL_MS, OWNER}
end

redis.register_function('syncgate_publish', publish)
redis.register_function('syncgate_publish_encoded', publish_encoded)
redis.register_function('syncgate_publish_at', publish_at)
redis.register_function('syncgate_history', function(keys, args) return history(keys, args, false) end)
redis.register_function('syncgate_history_page', function(keys, args) return history(keys, args, true) end)
redis.register_function{function_name = 'syncgate_version', callback = version, flags = {'no-writes'}}
