#!lua
-- arrive: tell a workflow step that one of its parents ended. Exactly once per parent: what was
-- heard is stored as the step's field in:<k> (HSETNX-like: a delivery repeated after a crash of
-- the worker that made it changes nothing), so a step becomes ready exactly once, when the last
-- of its parents succeeded. A failed parent ends a waiting step: cancelled if it has successors
-- of its own (they hear of it in turn), dead with the reason if it is the flow's last step. A
-- parent that succeeds after all (`taskq dlq replay`) resumes a step so ended.
-- Not allow-oom: it copies a result into the step; refused at maxmemory, the parent stays in its
-- outbox and a later sweep tells again.
-- KEYS[1]  <ns>:{q}   the step's queue base
-- ARGV: step id, k (which parent, from 1), 'ok' or 'failed', the parent's packed result (ok) or
--   the reason (failed: 'upstream_failed: <task> <job id>'), waiting ttl ms, result ttl ms,
--   dead ttl ms, dead max
-- Returns 0 if it heard this before (or the step is gone), 1 if it took note, 2 if the step
-- ended (it has successors: they are told through the outbox), 3 if the step became ready.
-- @include lib/now
-- @include lib/step
-- @include lib/dead
local now = now_ms()
local base, id, k, kind, payload = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, result_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
dead_ttl, dead_max = tonumber(ARGV[7]), tonumber(ARGV[8])
local jk = job_key(base, id)
local slot = 'in:' .. k
local f = redis.call('HMGET', jk, 'status', slot, 'children', 'priority', 'reason', 'task')
local status, had = f[1], f[2]
-- a step that succeeded heard from every parent (its record no longer keeps what they said)
if not status or status == 'succeeded' then return 0 end

local function go()  -- every parent succeeded
  step_ready(base, id, jk, priority_of(f[4]), f[6], now)
  return 3
end

if kind == 'ok' then
  if had and string.sub(had, 1, 1) == '+' then return 0 end
  redis.call('HSET', jk, slot, '+' .. payload)
  local waiting = redis.call('HINCRBY', jk, 'waiting', -1)
  local failed = tonumber(redis.call('HGET', jk, 'failed_in') or '0') or 0
  if had then failed = redis.call('HINCRBY', jk, 'failed_in', -1) end
  if status == 'waiting' then
    if waiting <= 0 then return go() end
    keep_waiting(jk, ttl)
  elseif failed <= 0 and (status == 'dead' or status == 'cancelled') and f[5]
      and string.sub(f[5], 1, 16) == 'upstream_failed:' then
    -- the parent that failed was replayed and succeeded: the flow resumes from here
    redis.call('ZREM', base .. ':dead', id)
    redis.call('DEL', base .. ':done:' .. id)
    redis.call('HDEL', jk, 'reason', 'error', 'finished_ms')
    if waiting <= 0 then return go() end
    redis.call('HSET', jk, 'status', 'waiting')
    keep_waiting(jk, ttl)
  end
  return 1
end
if had then return 0 end
redis.call('HSET', jk, slot, '-' .. payload)
redis.call('HINCRBY', jk, 'failed_in', 1)
if status ~= 'waiting' then return 1 end
if f[3] then
  finish(base, id, jk, 'cancelled', now, result_ttl, {'reason', payload})
  return 2
end
bury(base, id, jk, now, payload, nil, nil)
return 1
