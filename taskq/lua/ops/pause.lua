#!lua flags=allow-oom
-- pause: stop (or start again) leasing jobs from one queue, for every worker at once
-- (`taskq queue pause|resume`). lib/take.lua leases nothing while <base>:paused exists; jobs
-- still enter the queue, and running ones finish. Resuming wakes an idle worker at once.
-- allow-oom: a small flag, so an operator can pause a queue of a full Redis.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: '1' pause, '0' resume
-- Returns 1 if that changed the queue, else 0.
-- @include lib/wake
local base = KEYS[1]
if ARGV[1] == '1' then
  return redis.call('SET', base .. ':paused', '1', 'NX') and 1 or 0
end
local changed = redis.call('DEL', base .. ':paused')
if changed == 1 then wake(base) end
return changed
