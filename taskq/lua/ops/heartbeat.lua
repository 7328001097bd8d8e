#!lua flags=allow-oom
-- heartbeat: a worker says it is alive (or, with ttl 0, that it stopped).
-- allow-oom: a few small fields rewritten in place; a full Redis must not make workers look dead.
-- KEYS[1] <ns>:{<ns>:global}:workers      zset  worker id -> unix ms until which it counts as live
-- KEYS[2] <ns>:{<ns>:global}:worker:<id>  hash  host, pid, queues, concurrency, processed, started_ms, ...
-- ARGV: worker id, ttl ms (0 = deregister), then field, value pairs
-- @include lib/now
local now = now_ms()
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 86400000)  -- forget workers dead for a day
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
redis.call('HSET', KEYS[2], 'beat_ms', now)
redis.call('PEXPIRE', KEYS[2], ttl)
return now
