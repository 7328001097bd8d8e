#!lua
-- release: give unfinished jobs back to the front of their ready list (graceful shutdown).
-- KEYS[1]      taskq:{q}:leases   zset
-- KEYS[2..11]  taskq:{q}:ready:9 .. taskq:{q}:ready   lists, highest priority first
-- KEYS[12]     taskq:{q}:notify   list
-- ARGV: job key prefix, then (id, token) pairs
-- Returns how many jobs were given back.
local prefix = ARGV[1]
local n = 0
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = prefix .. id
  local f = redis.call('HMGET', jk, 'token', 'priority')
  if f[1] == token then
    local prio = tonumber(f[2] or '0') or 0
    if prio < 0 or prio > 9 then prio = 0 end
    redis.call('ZREM', KEYS[1], id)
    redis.call('LPUSH', KEYS[11 - prio], id)
    redis.call('HSET', jk, 'status', 'queued')
    redis.call('HDEL', jk, 'token')
    n = n + 1
  end
end
if n > 0 and redis.call('LLEN', KEYS[12]) < 64 then redis.call('LPUSH', KEYS[12], '1') end
return n
