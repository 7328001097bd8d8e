#!lua flags=allow-oom
-- cancel: stop a job that has not finished. Queued jobs are skipped when fetched,
-- scheduled ones leave the schedule, running ones finish but are never retried.
-- KEYS[1] taskq:{q}:job:<id>   hash
-- KEYS[2] taskq:{q}:scheduled  zset
-- KEYS[3] taskq:{q}:done:<id>  list  result wake-up for job.result()
-- KEYS[4..13] taskq:{q}:ready:9 .. taskq:{q}:ready   lists, highest priority first
-- ARGV: id, result ttl ms
-- Returns the status the job had (false if there is no such job).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'status', 'dedup', 'waiter', 'priority')
local status = f[1]
if not status then return false end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  return status
end
if status ~= 'queued' and status ~= 'scheduled' and status ~= 'failed' then return status end
redis.call('ZREM', KEYS[2], ARGV[1])
if status == 'queued' then
  -- take the id out of its ready list, so it cannot outlive its record there
  local prio = tonumber(f[4] or '0') or 0
  if prio < 0 or prio > 9 then prio = 0 end
  redis.call('LREM', KEYS[13 - prio], 1, ARGV[1])
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if f[2] and redis.call('GET', f[2]) == ARGV[1] then redis.call('DEL', f[2]) end
if f[3] then
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]))
end
return status
