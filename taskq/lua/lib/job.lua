-- append a field name and value to a list of them
local function add_fields(list, name, value)
  list[#list + 1] = name
  list[#list + 1] = value
end

-- a job due at `due` may start until this unix ms (false: no deadline): `expires_at` (unix ms) if
-- given, else `expires_in` ms after its due time (each '' , '0' or nil for none)
local function deadline(due, expires_in, expires_at)
  local at = tonumber(expires_at or '0') or 0
  if at > 0 then return at end
  local within = tonumber(expires_in or '0') or 0
  return within > 0 and due + within
end

-- create_job: a new job record (the message, its task's name, and the counters the other scripts
-- rely on), its "enqueued" event and its count in the history (lib/stats.lua). `extra` is a list of name, value pairs stored with it.
-- @include lib/events
-- @include lib/stats
local function create_job(base, id, jk, body, prio, now, task, extra)
  if task and task ~= '' then add_fields(extra, 'task', task) end
  -- deliveries and lost are left out: absent reads as 0 (a field less is ~50 bytes of a hash table)
  redis.call('HSET', jk, 'msg', body, 'priority', prio, 'enqueued_ms', now, unpack(extra))
  emit(base, 'enqueued', id, task, '1')
  stats_count(base, now, task, 'e')
end

-- a msgpack str header for a string of n bytes
local function str_header(n)
  if n < 32 then return string.char(0xa0 + n) end
  if n < 256 then return string.char(0xd9, n) end
  return string.char(0xda, math.floor(n / 256), n % 256)
end

-- a packed message (a msgpack map) with its "id" entry naming job `to` instead of `from`: a
-- debounced call's message goes to the job that holds the key (the entry's value is
-- length-prefixed, so only it changes); unchanged if it has no such entry
local function with_id(msg, from, to)
  local entry = '\162id' .. str_header(#from) .. from
  local at = string.find(msg, entry, 1, true)
  if not at then return msg end
  return string.sub(msg, 1, at - 1) .. '\162id' .. str_header(#to) .. to .. string.sub(msg, at + #entry)
end
