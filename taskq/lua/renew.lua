#!lua flags=allow-oom
-- renew: extend the leases of running jobs whose token is still current.
-- allow-oom: ZADD XX on an existing member does not grow memory.
-- KEYS[1] taskq:{q}:leases   zset id -> lease deadline unix ms
-- ARGV: lease ms, job key prefix, then (id, token) pairs
-- Returns the ids whose lease was lost (token no longer current).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', ARGV[2] .. id, 'token') == token then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
