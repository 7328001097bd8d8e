#!lua flags=allow-oom
-- cancel: stop a job that has not finished. Queued, scheduled, failed (waiting for its retry),
-- reserved (prefetched, not started) and waiting (a workflow step whose parents have not all
-- ended) jobs end cancelled and never start; a running one
-- finishes its attempt but is never retried. Foreign producers may call this script
-- (taskq/lua/public/cancel.lua, the same with its includes written out; docs/protocol.md §7).
-- allow-oom: it ends a job, which frees memory.
-- KEYS[1] <ns>:{q}:job:<id>   hash
-- KEYS[2] <ns>:{q}:scheduled  zset; the queue's base is this key's prefix
-- KEYS[3] <ns>:{q}:done:<id>  list  result wake-up for job.result() (named again from the base)
-- ARGV: id, result ttl ms, and optionally an abort note (who asked): a running job is then
--   stopped too (its worker learns it when it renews the lease), and the job's reason says
--   'aborted: <note>' when it ends cancelled
-- Returns the status the job had (false if there is no such job).
-- @include lib/now
-- @include lib/finish
-- @include lib/place
local now = now_ms()
local base = string.sub(KEYS[2], 1, -#':scheduled' - 1)
local id, jk = ARGV[1], KEYS[1]
local f = redis.call('HMGET', jk, 'status', 'priority', 'gate', 'part')
local status = f[1]
if not status then return false end
local note = ARGV[3] and ARGV[3] ~= '' and ARGV[3]
if status == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  if note then redis.call('HSET', jk, 'abort', note) end
  return status
end
if status ~= 'queued' and status ~= 'scheduled' and status ~= 'failed' and status ~= 'reserved'
    and status ~= 'waiting' then
  return status
end
-- out of the list or set it waits in, so the id cannot outlive its record there (finish() drops a
-- reserved one's lease and takes a job out of its ordering key's line; a waiting step is in none)
if status ~= 'reserved' and status ~= 'waiting' then unplace(base, id, status, priority_of(f[2]), f[3], f[4]) end
finish(base, id, jk, 'cancelled', now, tonumber(ARGV[2]), note and {'reason', 'aborted: ' .. note} or {})
return status
