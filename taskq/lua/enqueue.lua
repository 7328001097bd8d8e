#!lua
-- enqueue: store one job and make it ready (or scheduled) in one step.
-- KEYS[1] taskq:{q}:job:<id>     hash   the job record (created here)
-- KEYS[2] taskq:{q}:ready[:p]    list   ready ids of the job's priority
-- KEYS[3] taskq:{q}:scheduled    zset   id -> due unix ms
-- KEYS[4] taskq:{q}:notify       list   wake-up tokens for idle workers
-- KEYS[5] taskq:{q}:key:<key>    string dedup key -> live job id (only used when ARGV[5] == '1')
-- ARGV: id, packed message, delay_ms, at_ms (0 = use delay), has_key ('1'/'0'), priority
-- Returns {job id, 1 if created else 0}; an existing live job with the same key wins.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[5])
  if existing then return {existing, 0} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {id, 0} end
local due = tonumber(ARGV[4])
if due == 0 then due = now + tonumber(ARGV[3]) end
local status = 'queued'
if due > now then
  redis.call('ZADD', KEYS[3], due, id)
  status = 'scheduled'
else
  redis.call('RPUSH', KEYS[2], id)
end
redis.call('HSET', KEYS[1], 'msg', ARGV[2], 'status', status, 'priority', ARGV[6],
  'enqueued_ms', now, 'deliveries', 0, 'lost', 0)
if ARGV[5] == '1' then
  redis.call('SET', KEYS[5], id)
  redis.call('HSET', KEYS[1], 'dedup', KEYS[5])
end
if redis.call('LLEN', KEYS[4]) < 64 then redis.call('LPUSH', KEYS[4], '1') end
return {id, 1}
