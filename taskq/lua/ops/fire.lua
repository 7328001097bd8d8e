#!lua
-- fire: claim one cron tick of a schedule and enqueue its job, in one step (exactly once per tick).
-- KEYS[1] <ns>:{q}                   the queue's base
-- KEYS[2] <ns>:{q}:schedule:<name>   hash  spec, last (ms: the newest tick claimed), fired_ms,
--                                          fired_tick (the newest tick fired), job, by, runs (ticks
--                                          fired), paused, end_ms, limit; a stored (source 'api')
--                                          schedule's definition too (ops/schedule.lua writes it)
-- KEYS[3] <ns>:{q}:job:<id>          hash  the job record (created here when firing)
-- ARGV: mode, tick ms, spec, beat id, job id, packed message, priority, overlap ('skip' or absent),
--   gate (the task's name if it has its own rate_limit= or max_running=; '' or absent = none),
--   task name (for the job's record and its events), expires in (ms after the tick the job may
--   still start; '0' or absent = no deadline), expires at (a unix ms deadline instead; '0' or absent),
--   at most once ('a': the job is dead-lettered, not run again, if its worker dies running it)
--   mode 'fire':  if tick > last, enqueue the job and set last = tick; with overlap 'skip' and the
--                 previous fired job not ended yet, set last = skipped_tick = tick without a job
--   mode 'skip':  if tick > last, set last = tick without a job (catch-up policy "none")
--   mode 'reset': if spec differs, start the schedule afresh at last = tick (new or changed cron)
-- Returns 1 done, 2 skipped (overlap), 0 tick already claimed (or spec already reset),
-- -1 spec differs (caller re-reads), 3 paused, 4 ended (a tick past end_ms, or limit runs fired):
-- no job, nothing claimed; -2 reset refused: a schedule stored at run time has this name.
-- The claim compares ticks, so a beat that lost its lease while firing cannot fire a tick twice.
-- @include lib/now
-- @include lib/ready
-- @include lib/job
local now = now_ms()
local base, sk, jk = KEYS[1], KEYS[2], KEYS[3]
local mode = ARGV[1]
local tick = tonumber(ARGV[2])
local state = redis.call('HMGET', sk, 'spec', 'last', 'paused', 'end_ms', 'limit', 'runs', 'source')
if mode == 'reset' then
  if state[7] == 'api' then return -2 end
  if state[1] == ARGV[3] then return 0 end
  redis.call('HSET', sk, 'spec', ARGV[3], 'last', tick, 'reset_ms', now, 'by', ARGV[4])
  redis.call('HDEL', sk, 'fired_ms', 'fired_tick', 'job')
  return 1
end
if state[1] ~= ARGV[3] then return -1 end
if tick <= (tonumber(state[2]) or -1) then return 0 end
if state[3] == '1' then return 3 end
if mode == 'fire' and ((state[4] and tick > tonumber(state[4]))
    or (state[5] and (tonumber(state[6]) or 0) >= tonumber(state[5]))) then
  return 4
end
if mode == 'fire' and ARGV[8] == 'skip' then
  local prev = redis.call('HGET', sk, 'job')
  local st = prev and prev ~= ARGV[5] and redis.call('HGET', base .. ':job:' .. prev, 'status')
  if st and st ~= 'succeeded' and st ~= 'dead' and st ~= 'cancelled' then  -- still queued or running
    redis.call('HSET', sk, 'last', tick, 'skipped_tick', tick, 'skipped_ms', now, 'by', ARGV[4])
    return 2
  end
end
if mode == 'fire' then
  local id = ARGV[5]
  if redis.call('EXISTS', jk) == 0 then
    local prio = priority_of(ARGV[7])
    local extra = {'status', 'queued', 'fired_by', ARGV[4]}
    if ARGV[9] and ARGV[9] ~= '' then add_fields(extra, 'gate', ARGV[9]) end
    local expires = deadline(tick, ARGV[11], ARGV[12])
    if expires then add_fields(extra, 'expires_ms', expires) end
    if ARGV[13] == 'a' then add_fields(extra, 'amo', '1') end
    create_job(base, id, jk, ARGV[6], prio, now, ARGV[10], extra)
    ready(base, id, false, prio, false)
  end
  redis.call('HSET', sk, 'last', tick, 'fired_ms', now, 'fired_tick', tick, 'job', id, 'by', ARGV[4])
  redis.call('HINCRBY', sk, 'runs', 1)
else
  redis.call('HSET', sk, 'last', tick, 'by', ARGV[4])
end
return 1
