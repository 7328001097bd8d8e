#!lua
-- bury: move a job to the dead-letter set with a reason, if its lease token is current.
-- KEYS[1] taskq:{q}:leases     zset
-- KEYS[2] taskq:{q}:dead       zset id -> dead-lettered at unix ms
-- KEYS[3] taskq:{q}:job:<id>   hash
-- KEYS[4] taskq:{q}:done:<id>  list  result wake-up for job.result()
-- ARGV: id, token, reason, error text, dead ttl ms, max dead jobs, job key prefix, packed message ('' = keep)
-- Returns 1 if buried, 0 if the token is no longer current.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local f = redis.call('HMGET', KEYS[3], 'token', 'dedup', 'waiter')
if f[1] ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[3], 'token')
redis.call('HSET', KEYS[3], 'status', 'dead', 'reason', ARGV[3], 'error', ARGV[4], 'finished_ms', now)
if ARGV[8] ~= '' then redis.call('HSET', KEYS[3], 'msg', ARGV[8]) end
local ttl = tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[2], now, id)
if f[2] and redis.call('GET', f[2]) == id then redis.call('DEL', f[2]) end
if f[3] then
  redis.call('RPUSH', KEYS[4], '1')
  redis.call('PEXPIRE', KEYS[4], ttl)
end
-- cap the dead-letter set by age and by count; the job hashes expire on their own
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
if excess > 0 then
  for _, old in ipairs(redis.call('ZPOPMIN', KEYS[2], excess)) do
    if old ~= id then redis.call('DEL', ARGV[7] .. old) end
  end
end
return 1
