#!lua
-- fetch: promote due scheduled jobs, then lease up to `count` ready jobs to one worker.
-- KEYS[1..10]  taskq:{q}:ready:9 .. taskq:{q}:ready   lists of ready ids, highest priority first
-- KEYS[11]     taskq:{q}:scheduled   zset id -> due unix ms
-- KEYS[12]     taskq:{q}:leases      zset id -> lease deadline unix ms
-- KEYS[13]     taskq:{q}:dead        zset id -> dead-lettered at unix ms
-- KEYS[14]     taskq:{q}:seq         counter naming records for raw ready entries
-- KEYS[15]     taskq:{q}:notify      wake-up tokens: pushed when more became ready than this call leased
-- ARGV: count (0: only promote, as beat does), lease_ms, worker id, job key prefix (taskq:{q}:job:), dead ttl ms
-- Job hashes are named prefix..id: same hash tag, so the same Cluster slot.
-- Returns {ms until the next scheduled job (-1 if none), id, msg, token, deliveries, lost, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local prefix = ARGV[4]
local dead_ttl = tonumber(ARGV[5])

-- TYPE is a status reply: a table {ok = 'hash'} in Lua
local function is_hash(key)
  local ty = redis.call('TYPE', key)
  if type(ty) == 'table' then ty = ty.ok end
  return ty == 'hash'
end

-- an entry with no usable job record: keep it for inspection under a new id, never run it
local function bury_raw(entry, why)
  local dead_id = 'raw-' .. redis.call('INCR', KEYS[14])
  local dk = prefix .. dead_id
  redis.call('HSET', dk, 'msg', entry, 'status', 'dead', 'reason', why, 'finished_ms', now, 'priority', 0)
  redis.call('PEXPIRE', dk, dead_ttl)
  redis.call('ZADD', KEYS[13], now, dead_id)
end

local due = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[11], id)
  local jk = prefix .. id
  if redis.call('EXISTS', jk) == 1 and not is_hash(jk) then
    bury_raw(id, 'unknown_job: scheduled entry whose job record is not a hash')
  else
    local prio = tonumber(redis.call('HGET', jk, 'priority') or '0') or 0
    if prio < 0 or prio > 9 then prio = 0 end
    redis.call('RPUSH', KEYS[10 - prio], id)
    redis.call('HSET', jk, 'status', 'queued')
  end
end

local out = {-1}
local n = 0
for i = 1, 10 do
  if n >= count then break end
  local ids = redis.call('LPOP', KEYS[i], count - n)
  if ids then
    for _, id in ipairs(ids) do
      local jk = prefix .. id
      local f = {false, false}
      if redis.call('EXISTS', jk) == 1 then
        if is_hash(jk) then f = redis.call('HMGET', jk, 'msg', 'status', 'lost') else f = {false, 'other'} end
      end
      if not f[1] then
        bury_raw(id, f[2] == 'other' and 'unknown_job: ready entry whose job record is not a hash'
          or 'unknown_job: ready entry with no job record')
      elseif f[2] ~= 'cancelled' then
        local deliveries = redis.call('HINCRBY', jk, 'deliveries', 1)
        local token = ARGV[3] .. ':' .. deliveries
        redis.call('HSET', jk, 'status', 'running', 'token', token, 'started_ms', now)
        redis.call('ZADD', KEYS[12], now + lease_ms, id)
        out[#out + 1] = id
        out[#out + 1] = f[1]
        out[#out + 1] = token
        out[#out + 1] = deliveries
        out[#out + 1] = tonumber(f[3] or '0') or 0
        n = n + 1
      end
    end
  end
end

-- promoted jobs left ready: wake an idle worker (it waits for tokens, it does not poll)
if #due > n and redis.call('LLEN', KEYS[15]) < 64 then redis.call('LPUSH', KEYS[15], '1') end

local first = redis.call('ZRANGE', KEYS[11], 0, 0, 'WITHSCORES')
if first[2] then out[1] = math.max(0, tonumber(first[2]) - now) end
return out
