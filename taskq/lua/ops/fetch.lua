#!lua
-- fetch: promote due scheduled jobs, start prefetched jobs, and lease more to one worker.
-- KEYS[1]  <ns>:{q}   the queue's base (every key below is named from it: lib/keys.lua)
-- ARGV: run (jobs to lease as running: their bodies start now), reserve (more to lease as
--   reserved: prefetched, started later by a fetch that names them), dead ttl ms, then the
--   taker's fields (lib/take.lua: worker id, lease ms, suspect_lost, the queue's rate limit n and
--   window ms, its max_running, and its tasks' own limits), then (id, token) pairs to start now.
-- A job leased running, or started, gets status 'running' and started_ms; a reserved one keeps
-- its place in the leases set (renewed like any lease) and status 'reserved'. A job over its
-- task's limit waits in <base>:gate:<task>:held, still queued, until its task has room.
-- Returns {ms until the next scheduled job or until a rate limit lets the next job go, whichever
--   comes first (-1 if neither), number of pairs, 1 if a cap (the queue's or a task's) left jobs
--   behind else 0, the number E of expired workflow steps with successors, 1/0 per pair (started,
--   or refused: cancelled, expired or lease lost), then id, msg, token, deliveries, lost, 1 if
--   running else 0 per leased job, then the E ids of those steps (the worker tells their successors)}.
-- @include lib/now
-- @include lib/promote
-- @include lib/take
local now = now_ms()
local base = KEYS[1]
local run, reserve = tonumber(ARGV[1]), tonumber(ARGV[2])
dead_ttl = tonumber(ARGV[3])
local t, first_pair = new_taker(base, now, ARGV, 4)
stats_batch()  -- one write per minute of history for the whole call (stats_flush below)

promote(base, now, 1000)

local out = {-1, 0, 0, 0}
local pairs_n = 0
for i = first_pair, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = job_key(base, id)
  local f = redis.call('HMGET', jk, 'token', 'status', 'task', 'attempt', 'expires_ms', 'enqueued_ms', 'due_ms')
  local ok = 0
  if f[1] == token and f[2] == 'reserved' and f[5] and expire(t, id, jk, f[5]) then
    f[1] = false  -- past its deadline while prefetched: it never starts (refused below)
  end
  -- 'running' under the same token: this start ran before and its reply was lost (a retry)
  if f[1] == token and (f[2] == 'reserved' or f[2] == 'running') then
    redis.call('HSET', jk, 'status', 'running', 'started_ms', now)
    redis.call('SREM', t.reserved, id)
    if f[2] == 'reserved' then
      emit(base, 'started', id, f[3], f[4])
      stats_started(base, now, f[3], f[6], f[7])
    end
    ok = 1
  end
  out[#out + 1] = ok
  pairs_n = pairs_n + 1
end
out[2] = pairs_n

take(t, run, reserve, out)
local wait, capped = after_take(t)
out[1], out[3], out[4] = next_due(base, now), capped, #t.ended
for _, id in ipairs(t.ended) do out[#out + 1] = id end
if wait >= 0 and (out[1] < 0 or wait < out[1]) then out[1] = wait end
stats_flush()
return out
