#!lua flags=allow-oom
-- ack: record success of finished jobs whose lease token is still current.
-- allow-oom: acking frees memory (leases, dedup keys), so it must work at maxmemory.
-- KEYS[1]  taskq:{q}:leases   zset id -> lease deadline unix ms
-- ARGV: job key prefix, result ttl ms, done prefix (taskq:{q}:done:), then (id, token, packed result) triples
-- Returns the ids whose token was no longer current (lease lost: result discarded).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, ttl, done = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local lost = {}
for i = 4, #ARGV, 3 do
  local id, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jk = prefix .. id
  local f = redis.call('HMGET', jk, 'token', 'dedup', 'waiter')
  if f[1] ~= token then
    lost[#lost + 1] = id
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HSET', jk, 'status', 'succeeded', 'result', result, 'finished_ms', now)
    redis.call('HDEL', jk, 'token', 'error', 'reason')
    redis.call('PEXPIRE', jk, ttl)
    if f[2] and redis.call('GET', f[2]) == id then redis.call('DEL', f[2]) end
    if f[3] then
      redis.call('RPUSH', done .. id, '1')
      redis.call('PEXPIRE', done .. id, ttl)
    end
  end
end
return lost
