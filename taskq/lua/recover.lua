#!lua
-- recover: jobs whose lease lapsed (worker died or hung) go back to ready, or to dead
-- once they have lost their lease max_lost times (a poison job that kills its worker).
-- KEYS[1]      taskq:{q}:leases   zset id -> lease deadline unix ms
-- KEYS[2]      taskq:{q}:dead     zset id -> dead-lettered at unix ms
-- KEYS[3..12]  taskq:{q}:ready:9 .. taskq:{q}:ready   lists, highest priority first
-- KEYS[13]     taskq:{q}:notify   list
-- ARGV: job key prefix, max lost leases, batch limit, dead ttl ms, done prefix (taskq:{q}:done:),
--       worker id: '' = leases past their deadline; else every lease that worker holds now
--       (its supervisor saw it die, so there is no need to wait for the deadline)
-- Returns {requeued count, dead count}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, max_lost = ARGV[1], tonumber(ARGV[2])
local expired
local owner = ARGV[6] or ''
if owner == '' then
  expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
else
  expired = {}
  local mark = owner .. ':'
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local token = redis.call('HGET', prefix .. id, 'token')
    if token and string.sub(token, 1, #mark) == mark then expired[#expired + 1] = id end
  end
end
local requeued, buried = 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local jk = prefix .. id
  local ty = redis.call('TYPE', jk)
  if type(ty) == 'table' then ty = ty.ok end
  -- a record overwritten by something else cannot be requeued; drop the lease, keep going
  if ty == 'hash' then
    local lost = redis.call('HINCRBY', jk, 'lost', 1)
    redis.call('HDEL', jk, 'token')
    if lost >= max_lost then
      redis.call('HSET', jk, 'status', 'dead', 'finished_ms', now, 'reason',
        'lease_expired: lost its worker ' .. lost .. ' times (the worker died or hung while running it)')
      redis.call('PEXPIRE', jk, tonumber(ARGV[4]))
      redis.call('ZADD', KEYS[2], now, id)
      local f = redis.call('HMGET', jk, 'dedup', 'waiter')
      if f[1] and redis.call('GET', f[1]) == id then redis.call('DEL', f[1]) end
      if f[2] then
        redis.call('RPUSH', ARGV[5] .. id, '1')
        redis.call('PEXPIRE', ARGV[5] .. id, tonumber(ARGV[4]))
      end
      buried = buried + 1
    else
      local prio = tonumber(redis.call('HGET', jk, 'priority') or '0') or 0
      if prio < 0 or prio > 9 then prio = 0 end
      redis.call('LPUSH', KEYS[12 - prio], id)
      redis.call('HSET', jk, 'status', 'queued')
      requeued = requeued + 1
    end
  end
end
if requeued > 0 and redis.call('LLEN', KEYS[13]) < 64 then redis.call('LPUSH', KEYS[13], '1') end
return {requeued, buried}
