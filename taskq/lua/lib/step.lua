-- Workflow steps (ops/stage.lua, ops/arrive.lua): a step waiting for its parents is in no list
-- and expires after `ttl` ms unless a parent is heard from; once every parent succeeded it
-- becomes ready like any new job, with its "enqueued" event, its message carrying the parents'
-- results (so the worker needs no other read to run it).
-- @include lib/order
-- @include lib/events
-- @include lib/job

local function keep_waiting(jk, ttl)
  redis.call('PEXPIRE', jk, ttl)
end

-- a msgpack array header for n elements
local function array_header(n)
  if n < 16 then return string.char(0x90 + n) end
  if n < 65536 then return string.char(0xdc, math.floor(n / 256), n % 256) end
  return string.char(0xdd, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

-- a packed message (a msgpack map) with one entry more, "inputs": the array of the packed
-- values given (the map's header rewritten, the entry appended); false if it is not a map
local function with_inputs(msg, values)
  local b, n, rest = string.byte(msg, 1), 0, ''
  if b and b >= 0x80 and b <= 0x8f then
    n, rest = b - 0x80, string.sub(msg, 2)
  elseif b == 0xde then
    n, rest = string.byte(msg, 2) * 256 + string.byte(msg, 3), string.sub(msg, 4)
  else
    return false
  end
  n = n + 1
  local header = n < 16 and string.char(0x80 + n) or string.char(0xde, math.floor(n / 256), n % 256)
  return header .. rest .. '\166inputs' .. array_header(#values) .. table.concat(values)
end

-- every parent succeeded: in:1..parents (each '+' and a packed result) go into the message, and
-- its deadline (expires=) counts from now
local function step_ready(base, id, jk, prio, task, now)
  local e = redis.call('HMGET', jk, 'expires_in', 'expires_at')
  local expires = (e[1] or e[2]) and deadline(now, e[1], e[2])
  if expires then redis.call('HSET', jk, 'expires_ms', expires) end
  local parents = tonumber(redis.call('HGET', jk, 'parents') or '0') or 0
  if parents > 0 then
    local names = {}
    for k = 1, parents do names[k] = 'in:' .. k end
    local got = redis.call('HMGET', jk, unpack(names))
    local values = {}
    for k = 1, parents do values[k] = string.sub(got[k] or '+\192', 2) end  -- \192: nil
    local msg = with_inputs(redis.call('HGET', jk, 'msg') or '', values)
    if msg then redis.call('HSET', jk, 'msg', msg) end
  end
  redis.call('PERSIST', jk)
  emit(base, 'enqueued', id, task, '1')
  admit(base, id, jk, prio, false)
end
