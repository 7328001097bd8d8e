#!lua
-- move: change a job that has not started (queued, scheduled, or reserved: prefetched by a
-- worker, not started) through lib/place.lua: job.reschedule() gives it a new due time,
-- job.set_priority() a new priority. A reserved job is taken back: its lease token is deleted, so
-- the worker that prefetched it is refused when it asks to start it (ops/fetch.lua) and drops
-- it. A job waiting for its retry (failed) takes a new due time (job.run_now(): its retry now), not a
-- new priority. A running, waiting or ended job is left as it is.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: id, what, value: 'now' and 0 (run now a job waiting for a time: scheduled, or a retry
--   waiting; any other is left as it is), 'in' and ms from now, or 'at' and a unix ms (a new due time: a job due
--   now enters the queue at the back of its ordering key's line, if it has one; a deadline given
--   in seconds counts from the new due time), or 'priority' and 0..9 (a job waiting in a list
--   goes to the back of its new priority's; one behind its ordering key keeps its place there)
-- Returns {the status the job had ('' if there is no such job), 1 if changed else 0}.
-- @include lib/now
-- @include lib/place
local now = now_ms()
local base, id, what, value = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local jk = job_key(base, id)
local w = placed_of(jk)
local retrying = w.status == 'failed' and what ~= 'priority' and redis.call('ZSCORE', base .. ':scheduled', id)
if w.status ~= 'queued' and w.status ~= 'scheduled' and w.status ~= 'reserved' and not retrying then
  return {w.status or '', 0}
end
if what == 'now' and w.status ~= 'scheduled' and not retrying then return {w.status, 0} end
if what == 'priority' then
  local prio = priority_of(value)
  if w.status ~= 'scheduled' then
    -- out of its list (or back from its worker) and in again by its new priority; a job over its
    -- task's limit is held again by the next fetch (lib/take.lua)
    local where = take_back(base, id, jk, w, false)
    redis.call('HSET', jk, 'priority', prio)
    if where then ready(base, id, jk, prio, false, w.part or false) end
  else
    redis.call('HSET', jk, 'priority', prio)
  end
  return {w.status, 1}
end
local due = (what == 'in' or what == 'now') and now + value or value
take_back(base, id, jk, w, true)
place_again(base, id, jk, w, due, now)
return {w.status, 1}
