#!lua flags=allow-oom
-- recover: jobs whose lease lapsed (their worker died or hung) go back to the front of ready.
-- A job that was running counts one more lost worker, and is dead-lettered once it has lost
-- max_lost (a poison job that kills its worker); a reserved one never started, so no blame. A
-- job of an at_most_once task (its record's field amo) that was running is dead-lettered at once,
-- reason 'lost: at_most_once', never run again (one leased running whose body had not started yet
-- goes too: Redis cannot tell, and at most once allows none); a reserved one is requeued.
-- allow-oom: it moves ids between structures of about the same size, and a worker that died
-- while Redis is full must still have its jobs come back.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: max lost, batch limit, dead ttl ms, dead max, worker id: '' = leases past their deadline;
--   else every lease that worker holds now (its supervisor saw it die: no need to wait)
-- Returns {requeued count, dead count}.
-- @include lib/now
-- @include lib/ready
-- @include lib/dead
local now = now_ms()
local base = KEYS[1]
local max_lost = tonumber(ARGV[1])
dead_ttl, dead_max = tonumber(ARGV[3]), tonumber(ARGV[4])
local leases = base .. ':leases'
local owner = ARGV[5] or ''
local expired
if owner == '' then
  expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
else
  expired = {}
  local mark = owner .. ':'
  for _, id in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
    local token = redis.call('HGET', job_key(base, id), 'token')
    if token and string.sub(token, 1, #mark) == mark then expired[#expired + 1] = id end
  end
end
local requeued, buried = 0, 0
for _, id in ipairs(expired) do
  local jk = job_key(base, id)
  if not is_hash(jk) then
    -- a record overwritten by something else cannot be requeued: drop the lease, keep going
    redis.call('ZREM', leases, id)
    redis.call('SREM', base .. ':reserved', id)
  else
    local f = redis.call('HMGET', jk, 'status', 'priority', 'lost', 'gate', 'part', 'amo')
    local lost = tonumber(f[3] or '0') or 0
    if f[1] ~= 'reserved' then lost = redis.call('HINCRBY', jk, 'lost', 1) end
    if f[1] ~= 'reserved' and f[6] == '1' then
      bury(base, id, jk, now, 'lost: at_most_once', nil)
      buried = buried + 1
    elseif lost >= max_lost then
      bury(base, id, jk, now,
        'lease_expired: lost its worker ' .. lost .. ' times (the worker died or hung while running it)', nil)
      buried = buried + 1
    else
      drop_lease(base, id, jk, nil, f[4], f[5])
      redis.call('HSET', jk, 'due_ms', now)  -- its next wait counts from now (lib/stats.lua)
      ready(base, id, jk, priority_of(f[2]), true, f[5])  -- it keeps its ordering key: it holds it
      requeued = requeued + 1
    end
  end
end
return {requeued, buried}
