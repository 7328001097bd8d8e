-- A task's own limits (rate_limit= and max_running= on @app.task), checked as fetch leases its
-- jobs (they carry the field gate = the task's name). A job over its task's limit is parked: it
-- waits, still queued, in <gate>:held; once the task has room again, a fetch leases it first.
-- Starts are counted in the sliding window <gate>:rate, leases in the set <gate>:leases
-- (dropped by lib/lease.lua, which wakes an idle worker for the held jobs).
-- @include lib/keys

local function new_gate(base, task, rate_n, window, cap)
  local gk = gate_key(base, task)
  return {base = base, task = task, rate_n = rate_n, window = window, cap = cap,
    rate = gk .. ':rate', leases = gk .. ':leases', held = gk .. ':held', room = nil, rate_left = nil,
    parked = false}
end

-- how many more of the task's jobs may be leased now (computed once per script call)
local function gate_room(g, now, queue_leases)
  if g.room then return g.room end
  local room = math.huge
  if g.rate_n > 0 then
    redis.call('ZREMRANGEBYSCORE', g.rate, '-inf', now - g.window)
    room = g.rate_n - redis.call('ZCARD', g.rate)
    g.rate_left = room
  end
  if g.cap > 0 then
    local count = redis.call('SCARD', g.leases)
    if count >= g.cap then
      -- at the cap: a slot whose lease left without a record to name its task is free again
      -- (a rare leftover: two members at random are checked per call, so it is found in time)
      for _, id in ipairs(redis.call('SRANDMEMBER', g.leases, 2)) do
        if not redis.call('ZSCORE', queue_leases, id) then
          redis.call('SREM', g.leases, id)
          count = count - 1
        end
      end
    end
    room = math.min(room, g.cap - count)
  end
  g.room = room
  return room
end

-- a job of the task leased now (`start` names this start in the window)
local function pass(g, now, start, id)
  if g.rate_n > 0 then
    redis.call('ZADD', g.rate, now, start)
    redis.call('PEXPIRE', g.rate, g.window)
  end
  if g.cap > 0 then redis.call('SADD', g.leases, id) end
  g.room = g.room - 1
  if g.rate_left then g.rate_left = g.rate_left - 1 end
end

-- a job of the task over its limit waits (its status stays 'queued'); <base>:gates names the
-- tasks with held jobs
local function park(g, id)
  if redis.call('RPUSH', g.held, id) == 1 then redis.call('SADD', g.base .. ':gates', g.task) end
  redis.call('INCR', g.base .. ':parked')  -- they still count as ready for max_ready (lib/room.lua)
  g.parked = true
end

-- a held job cancelled: out of its task's held list (true if it was there)
local function drop_held(base, task, id)
  if redis.call('LREM', gate_key(base, task) .. ':held', 1, id) == 0 then return false end
  redis.call('DECR', base .. ':parked')
  return true
end

-- the held jobs the task has room for now (at most `most`), first held first, out of its list
local function unpark(g, now, most, queue_leases)
  if redis.call('EXISTS', g.held) == 0 then
    redis.call('SREM', g.base .. ':gates', g.task)
    return {}
  end
  local take = math.min(most, gate_room(g, now, queue_leases))
  if take <= 0 then
    g.parked = true
    return {}
  end
  local ids = redis.call('LPOP', g.held, take)
  redis.call('DECRBY', g.base .. ':parked', #ids)
  if redis.call('EXISTS', g.held) == 1 then g.parked = true else redis.call('SREM', g.base .. ':gates', g.task) end
  return ids
end

-- ms until the task's rate window lets its next job go (nil: held by its cap alone, which the
-- end of a lease signals)
local function reopens_in(g, now)
  if not g.rate_left or g.rate_left > 0 then return nil end
  local oldest = redis.call('ZRANGE', g.rate, 0, 0, 'WITHSCORES')
  return oldest[2] and math.max(1, tonumber(oldest[2]) + g.window - now + 1) or 1
end
