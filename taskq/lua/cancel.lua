#!lua flags=allow-oom
-- GENERATED from taskq/lua/ops/cancel.lua and the taskq/lua/lib/ files it includes:
-- edit those, then run `make lua`.
-- cancel: stop a job that has not finished. Queued, scheduled, failed (waiting for its retry)
-- and reserved (prefetched, not started) jobs end cancelled and never start; a running one
-- finishes its attempt but is never retried. Foreign producers may call this script
-- (taskq/lua/cancel.lua, the same with its includes written out; docs/protocol.md §7).
-- allow-oom: it ends a job, which frees memory.
-- KEYS[1] <ns>:{q}:job:<id>   hash
-- KEYS[2] <ns>:{q}:scheduled  zset; the queue's base is this key's prefix
-- KEYS[3] <ns>:{q}:done:<id>  list  result wake-up for job.result() (named again from the base)
-- ARGV: id, result ttl ms
-- Returns the status the job had (false if there is no such job).
-- now_ms(): Redis's clock (TIME) in unix ms, the one clock of every script (never the client's).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The one place a job ends (succeeded, dead or cancelled): lease dropped (with the fields in
-- `gone`), final status and finished_ms plus `fields` (a list of name, value), the record expires
-- after `ttl` ms, the deduplication key is released, and a result() waiter is woken. `dedup` and
-- `waiter` are the job's fields of those names when the caller has read them (else false: read).
-- The lease of a job leaving its worker (it ended, is retried, given back or recovered): out of
-- the leases and reserved sets, token deleted (with the fields in `also`, a list of names), so the
-- last holder's late calls are refused.
-- wake(base): make sure a wake-up token waits on the queue's notify list for idle workers.
-- One token is enough: a worker that takes it and leaves ready jobs behind passes it on
-- (fetch.lua), so a burst reaches every idle worker one hop at a time, and tokens never pile up.
local woken = {}
local function wake(base)
  if woken[base] then return end
  woken[base] = true
  local notify = base .. ':notify'
  if redis.call('LLEN', notify) == 0 then redis.call('LPUSH', notify, '1') end
end
local function drop_lease(base, id, jk, also)
  redis.call('ZREM', base .. ':leases', id)
  -- a fetch refused jobs for the queue's max_running: this freed slot wakes an idle worker
  if redis.call('DEL', base .. ':capped') == 1 then wake(base) end
  redis.call('SREM', base .. ':reserved', id)
  if also then redis.call('HDEL', jk, 'token', unpack(also)) else redis.call('HDEL', jk, 'token') end
end
local function finish(base, id, jk, status, now, ttl, fields, gone, dedup, waiter)
  drop_lease(base, id, jk, gone)
  if dedup == nil then dedup, waiter = unpack(redis.call('HMGET', jk, 'dedup', 'waiter')) end
  redis.call('HSET', jk, 'status', status, 'finished_ms', now, unpack(fields))
  redis.call('PEXPIRE', jk, ttl)
  if dedup and redis.call('GET', dedup) == id then redis.call('DEL', dedup) end
  if waiter then
    local done = base .. ':done:' .. id
    redis.call('RPUSH', done, '1')
    redis.call('PEXPIRE', done, ttl)
  end
end
-- Key names of one queue from its base '<namespace>:{<queue>}', as taskq/broker/keys.py builds
-- them. They share the base's hash tag, so every key here is in the script's Cluster slot.
local function ready_key(base, prio)
  if prio == 0 then return base .. ':ready' end
  return base .. ':ready:' .. prio
end

local function job_key(base, id)
  return base .. ':job:' .. id
end

-- a stored priority (text); anything but an integer from 0 to 9 reads as 0
local function priority_of(raw)
  local p = tonumber(raw or '0')
  if not p or p < 0 or p > 9 or p % 1 ~= 0 then return 0 end
  return p
end

-- TYPE answers with a status reply, a table {ok = 'hash'} in Lua
local function is_hash(key)
  local ty = redis.call('TYPE', key)
  if type(ty) == 'table' then ty = ty.ok end
  return ty == 'hash'
end
local now = now_ms()
local base = string.sub(KEYS[2], 1, -#':scheduled' - 1)
local id, jk = ARGV[1], KEYS[1]
local f = redis.call('HMGET', jk, 'status', 'priority')
local status = f[1]
if not status then return false end
if status == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  return status
end
if status ~= 'queued' and status ~= 'scheduled' and status ~= 'failed' and status ~= 'reserved' then
  return status
end
redis.call('ZREM', KEYS[2], id)
if status == 'queued' then
  -- out of its ready list, so the id cannot outlive its record there
  redis.call('LREM', ready_key(base, priority_of(f[2])), 1, id)
end
finish(base, id, jk, 'cancelled', now, tonumber(ARGV[2]), {})
return status
