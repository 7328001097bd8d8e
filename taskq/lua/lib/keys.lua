-- Key names of one queue from its base '<namespace>:{<queue>}', as taskq/broker/keys.py builds
-- them. They share the base's hash tag, so every key here is in the script's Cluster slot.
local function ready_key(base, prio)
  if prio == 0 then return base .. ':ready' end
  return base .. ':ready:' .. prio
end

local function job_key(base, id)
  return base .. ':job:' .. id
end

-- the line of jobs of one ordering key (lib/order.lua)
local function order_key(base, key)
  return base .. ':order:' .. key
end

-- the keys of a task's own limits (rate_limit=, max_running= on @app.task) start with this
local function gate_key(base, task)
  return base .. ':gate:' .. task
end

-- a stored priority (text); anything but an integer from 0 to 9 reads as 0
local function priority_of(raw)
  local p = tonumber(raw or '0')
  if not p or p < 0 or p > 9 or p % 1 ~= 0 then return 0 end
  return p
end

-- TYPE answers with a status reply, a table {ok = 'hash'} in Lua
local function is_hash(key)
  local ty = redis.call('TYPE', key)
  if type(ty) == 'table' then ty = ty.ok end
  return ty == 'hash'
end
