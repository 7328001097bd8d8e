#!lua flags=allow-oom
-- cancel: stop a job that has not finished. Queued jobs are skipped when fetched,
-- scheduled ones leave the schedule, running ones finish but are never retried.
-- KEYS[1] taskq:{q}:job:<id>   hash
-- KEYS[2] taskq:{q}:scheduled  zset
-- KEYS[3] taskq:{q}:done:<id>  list  result wake-up for job.result()
-- ARGV: id, result ttl ms
-- Returns the status the job had (false if there is no such job).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'status', 'dedup', 'waiter')
local status = f[1]
if not status then return false end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  return status
end
if status ~= 'queued' and status ~= 'scheduled' and status ~= 'failed' then return status end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if f[2] and redis.call('GET', f[2]) == ARGV[1] then redis.call('DEL', f[2]) end
if f[3] then
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]))
end
return status
