#!lua
-- fire: claim one cron tick of a schedule and enqueue its job, in one step (exactly once per tick).
-- KEYS[1] taskq:{q}:schedule:<name>  hash  spec, last (ms: the newest tick claimed), fired_ms, job, by
-- KEYS[2] taskq:{q}:job:<id>          hash  the job record (created here when firing)
-- KEYS[3] taskq:{q}:ready[:p]         list  ready ids of the job's priority
-- KEYS[4] taskq:{q}:notify            list  wake-up tokens for idle workers
-- ARGV: mode, tick ms, spec, beat id, job id, packed message, priority
--   mode 'fire':  if tick > last, enqueue the job and set last = tick
--   mode 'skip':  if tick > last, set last = tick without a job (catch-up policy "none")
--   mode 'reset': if spec differs, start the schedule afresh at last = tick (new or changed cron)
-- Returns 1 done, 0 tick already claimed (or spec already reset), -1 spec differs (caller re-reads).
-- The claim compares ticks, so a beat that lost its lease while firing cannot fire a tick twice.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
local tick = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'spec', 'last')
if mode == 'reset' then
  if state[1] == ARGV[3] then return 0 end
  redis.call('HSET', KEYS[1], 'spec', ARGV[3], 'last', tick, 'reset_ms', now, 'by', ARGV[4])
  redis.call('HDEL', KEYS[1], 'fired_ms', 'job')
  return 1
end
if state[1] ~= ARGV[3] then return -1 end
if tick <= (tonumber(state[2]) or -1) then return 0 end
if mode == 'fire' then
  local id = ARGV[5]
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HSET', KEYS[2], 'msg', ARGV[6], 'status', 'queued', 'priority', ARGV[7],
      'enqueued_ms', now, 'deliveries', 0, 'lost', 0, 'fired_by', ARGV[4])
    redis.call('RPUSH', KEYS[3], id)
    if redis.call('LLEN', KEYS[4]) < 64 then redis.call('LPUSH', KEYS[4], '1') end
  end
  redis.call('HSET', KEYS[1], 'last', tick, 'fired_ms', now, 'job', id, 'by', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'last', tick, 'by', ARGV[4])
end
return 1
