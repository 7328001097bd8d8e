#!lua
-- replay: put a dead job back on its ready list with a fresh message (attempts reset).
-- KEYS[1]      taskq:{q}:dead     zset
-- KEYS[2]      taskq:{q}:job:<id> hash
-- KEYS[3..12]  taskq:{q}:ready:9 .. taskq:{q}:ready   lists, highest priority first
-- KEYS[13]     taskq:{q}:notify   list
-- KEYS[14]     taskq:{q}:done:<id> list  stale wake-up from the earlier ending, dropped
-- ARGV: id, packed message
-- Returns 1 if replayed, 0 if the id is not in the dead-letter set.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local prio = tonumber(redis.call('HGET', KEYS[2], 'priority') or '0') or 0
if prio < 0 or prio > 9 then prio = 0 end
redis.call('PERSIST', KEYS[2])
redis.call('DEL', KEYS[14])
redis.call('HSET', KEYS[2], 'msg', ARGV[2], 'status', 'queued', 'lost', 0, 'priority', prio)
redis.call('HDEL', KEYS[2], 'reason', 'error', 'finished_ms', 'cancel', 'token',
  'progress', 'progress_text', 'progress_ms')
redis.call('RPUSH', KEYS[12 - prio], ARGV[1])
if redis.call('LLEN', KEYS[13]) < 64 then redis.call('LPUSH', KEYS[13], '1') end
return 1
