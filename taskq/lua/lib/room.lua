-- Backpressure (max_ready): a producer refused for a full queue marks it full; a fetch that takes
-- jobs off a full queue's ready lists gives a token per job taken to the producers blocked on room.
-- @include lib/keys

-- ready jobs of every priority, and those waiting behind an ordering key (lib/order.lua),
-- parked by their task's limits (lib/gate.lua) or in their partition's lanes (lib/part.lua)
local function ready_count(base)
  local c = redis.call('MGET', base .. ':ordered', base .. ':parked', base .. ':laned')
  local n = (tonumber(c[1] or '0') or 0) + (tonumber(c[2] or '0') or 0) + (tonumber(c[3] or '0') or 0)
  for prio = 0, 9 do n = n + redis.call('LLEN', ready_key(base, prio)) end
  return n
end

-- whether `adding` more ready jobs would pass max_ready (0 = no limit); marks the queue full if so
local function refuse_full(base, max_ready, adding)
  if max_ready <= 0 or ready_count(base) + adding <= max_ready then return false end
  redis.call('SET', base .. ':full', '1', 'PX', 60000)
  return true
end

-- after `taken` jobs left the ready lists: room for blocked producers, if any were refused
local function make_room(base, taken)
  if taken <= 0 or redis.call('DEL', base .. ':full') == 0 then return end
  local room = base .. ':room'
  for _ = 1, taken do redis.call('RPUSH', room, '1') end
  redis.call('PEXPIRE', room, 60000)
end
