#!lua flags=allow-oom
-- renew: extend the leases of leased jobs whose token is still current.
-- allow-oom: ZADD XX on an existing member does not grow memory.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: lease ms, then (id, token) pairs
-- Returns the positions (0-based) of the pairs whose lease was lost (the job's token is another now,
-- or none), and -(position + 1) for each renewed one whose job an abort was asked for.
-- @include lib/now
-- @include lib/keys
local deadline = now_ms() + tonumber(ARGV[1])
local base = KEYS[1]
local leases = base .. ':leases'
local lost = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', job_key(base, id), 'token', 'abort')
  if f[1] == token then
    redis.call('ZADD', leases, 'XX', deadline, id)
    if f[2] then lost[#lost + 1] = -(i - 2) / 2 - 1 end
  else
    lost[#lost + 1] = (i - 2) / 2
  end
end
return lost
