#!lua flags=allow-oom
-- empty: cancel the jobs of one queue that have not started (`taskq queue purge`): ready, held
-- by their task's limits, and scheduled (delayed, or failed and waiting for a retry). Each ends
-- through lib/finish.lua, as cancel.lua ends one: its waiter is woken, its key released, a job
-- behind it in its ordering key's line becomes ready (and is cancelled by the next round).
-- Running and reserved jobs are left. allow-oom: it frees memory.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: result ttl ms, most jobs to cancel in this call, the reason
-- Returns {cancelled, entries taken}: the caller calls again until no entry is taken.
-- @include lib/now
-- @include lib/finish
-- @include lib/gate
local now = now_ms()
local base = KEYS[1]
local ttl, left, reason = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local n, taken = 0, 0

local function cancel_one(id)
  taken = taken + 1
  local jk = job_key(base, id)
  local status = redis.call('HGET', jk, 'status')
  if status == 'queued' or status == 'scheduled' or status == 'failed' then
    finish(base, id, jk, 'cancelled', now, ttl, {'reason', reason})
    n = n + 1
  end
end

for prio = 9, 0, -1 do
  if taken >= left then break end
  for _, id in ipairs(redis.call('LPOP', ready_key(base, prio), left - taken) or {}) do cancel_one(id) end
end
for _, p in ipairs(redis.call('ZRANGE', base .. ':backlog', 0, -1)) do  -- partitions' lanes (lib/part.lua)
  for prio = 9, 0, -1 do
    if taken >= left then break end
    for _, id in ipairs(lane_pop(base, p, prio, left - taken)) do cancel_one(id) end
  end
end
for _, task in ipairs(redis.call('SMEMBERS', base .. ':gates')) do
  if taken >= left then break end
  for _, id in ipairs(redis.call('LRANGE', gate_key(base, task) .. ':held', 0, left - taken - 1)) do
    drop_held(base, task, id)
    cancel_one(id)
  end
end
if taken < left then
  for _, id in ipairs(redis.call('ZRANGE', base .. ':scheduled', 0, left - taken - 1)) do
    redis.call('ZREM', base .. ':scheduled', id)
    cancel_one(id)
  end
end
return {n, taken}
