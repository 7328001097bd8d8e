#!lua
-- retry: a failed attempt goes back to scheduled (or ready) with its next message.
-- KEYS[1] taskq:{q}:leases     zset
-- KEYS[2] taskq:{q}:scheduled  zset id -> due unix ms
-- KEYS[3] taskq:{q}:ready[:p]  list (the job's priority)
-- KEYS[4] taskq:{q}:job:<id>   hash
-- KEYS[5] taskq:{q}:notify     list
-- KEYS[6] taskq:{q}:done:<id>  list  result wake-up for job.result()
-- ARGV: id, token, packed next message, delay ms, error text, result ttl ms
-- Returns 1 if moved, 0 if the token is no longer current, 2 if the job was cancelled meanwhile.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local f = redis.call('HMGET', KEYS[4], 'token', 'cancel', 'dedup', 'waiter')
if f[1] ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[4], 'token')
if f[2] then
  -- cancelled while running: finished for good, so release its key and wake waiters
  local ttl = tonumber(ARGV[6])
  redis.call('HSET', KEYS[4], 'status', 'cancelled', 'error', ARGV[5], 'finished_ms', now)
  redis.call('PEXPIRE', KEYS[4], ttl)
  if f[3] and redis.call('GET', f[3]) == id then redis.call('DEL', f[3]) end
  if f[4] then
    redis.call('RPUSH', KEYS[6], '1')
    redis.call('PEXPIRE', KEYS[6], ttl)
  end
  return 2
end
redis.call('HSET', KEYS[4], 'msg', ARGV[3], 'error', ARGV[5])
redis.call('HDEL', KEYS[4], 'progress', 'progress_text', 'progress_ms')  -- the next attempt starts over
local delay = tonumber(ARGV[4])
if delay <= 0 then
  redis.call('RPUSH', KEYS[3], id)
  redis.call('HSET', KEYS[4], 'status', 'queued')
else
  redis.call('ZADD', KEYS[2], now + delay, id)
  redis.call('HSET', KEYS[4], 'status', 'failed')
end
if redis.call('LLEN', KEYS[5]) < 64 then redis.call('LPUSH', KEYS[5], '1') end
return 1
