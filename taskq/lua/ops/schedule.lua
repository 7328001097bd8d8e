#!lua
-- schedule: store, pause or resume a schedule (app.schedules), in its queue's slot, beside the
-- claim state fire.lua keeps, so a change and a tick's claim never interleave.
-- KEYS[1] <ns>:{q}:schedule:<id>   hash  (see fire.lua); 'source' is 'api' for a stored one
-- ARGV[1] mode:
--   'put'    ARGV: fingerprint (the timing's), task, cron ('' for an interval), tz, every ms
--            ('0' for cron), packed [args, kwargs], start ms, end ms, limit ('' = none),
--            overlap, catchup. Stores a new revision; spec = fingerprint#rev, so a beat holding
--            an older one re-reads before it fires. A new timing (or a new schedule) counts
--            from the first tick at least 1 s away (and not before start); the same timing
--            keeps its sequence. Runs and paused are kept.
--            Returns {rev, last}; {-2} if a schedule declared in code has this id.
--   'pause'  ARGV[2] '1' to create the hash (a code schedule no beat has started yet)
--   'resume' the first tick fired is at least 1 s away (paused ticks are not caught up)
--            Pause and resume return 1, or 0 if there is no such schedule.
-- @include lib/now
local now = now_ms()
local sk = KEYS[1]
local mode = ARGV[1]
local soonest = now + 999  -- ticks > this: at least 1 s away
if mode == 'pause' then
  if ARGV[2] ~= '1' and redis.call('EXISTS', sk) == 0 then return 0 end
  redis.call('HSET', sk, 'paused', '1', 'paused_ms', now)
  return 1
end
if mode == 'resume' then
  if redis.call('EXISTS', sk) == 0 then return 0 end
  local last = redis.call('HGET', sk, 'last')
  redis.call('HSET', sk, 'paused', '0')
  if last and tonumber(last) < soonest then redis.call('HSET', sk, 'last', soonest) end
  return 1
end
local old = redis.call('HMGET', sk, 'source', 'fingerprint', 'last', 'rev')
if redis.call('EXISTS', sk) == 1 and old[1] ~= 'api' then return {-2} end
-- the store's ms clock: a schedule removed and stored again never reuses a revision
local rev = math.max((tonumber(old[4]) or 0) + 1, now)
local start = tonumber(ARGV[8])
local last = tonumber(old[3])
if old[2] ~= ARGV[2] or not last then last = soonest end
if start and last < start - 1 then last = start - 1 end
redis.call('HSET', sk, 'source', 'api', 'spec', ARGV[2] .. '#' .. rev, 'fingerprint', ARGV[2], 'rev', rev,
  'last', last, 'task', ARGV[3], 'cron', ARGV[4], 'tz', ARGV[5], 'every_ms', ARGV[6], 'args', ARGV[7],
  'overlap', ARGV[11], 'catchup', ARGV[12], 'updated_ms', now)
local optional = {start_ms = ARGV[8], end_ms = ARGV[9], limit = ARGV[10]}
for name, value in pairs(optional) do
  if value == '' then redis.call('HDEL', sk, name) else redis.call('HSET', sk, name, value) end
end
return {rev, last}
