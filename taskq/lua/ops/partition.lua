#!lua
-- partition: change one partition of a queue (taskq.Partition, `taskq partition`): its own limits,
-- a pause, a backoff (lib/part.lua). What it changes holds for every worker at its next fetch; a
-- partition that may start jobs again takes its turns again at once.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: partition, then one of
--   'limit', max_running ('' = the queue's), rate n and window ms ('' '' = the queue's)
--   'pause' | 'resume'
--   'backoff', ms (no job of it starts before then; 0 ends a backoff)
-- Returns 1 if that changed something, else 0.
-- @include lib/now
-- @include lib/part
local now = now_ms()
local base, p, mode = KEYS[1], ARGV[1], ARGV[2]
local pk = part_key(base, p)
local conf = pk .. ':conf'
local changed = 1
if mode == 'limit' then
  if ARGV[3] == '' then redis.call('HDEL', conf, 'max_running') else redis.call('HSET', conf, 'max_running', ARGV[3]) end
  if ARGV[4] == '' then
    redis.call('HDEL', conf, 'rate_n', 'rate_window')
  else
    redis.call('HSET', conf, 'rate_n', ARGV[4], 'rate_window', ARGV[5])
  end
elseif mode == 'pause' then
  changed = redis.call('HSET', conf, 'paused', '1')
  redis.call('SADD', base .. ':blocked', p)
elseif mode == 'resume' then
  changed = redis.call('HDEL', conf, 'paused')
elseif mode == 'backoff' then
  local ms = tonumber(ARGV[3]) or 0
  if ms > 0 then
    redis.call('HSET', conf, 'until', now + ms)
    redis.call('SADD', base .. ':blocked', p)
    redis.call('ZADD', base .. ':pwait', now + ms, p)
  else
    changed = redis.call('HDEL', conf, 'until')
    redis.call('ZREM', base .. ':pwait', p)
  end
else
  return redis.error_reply('unknown mode ' .. tostring(mode))
end
if redis.call('EXISTS', conf) == 1 then conf_written(base, pk) end
local c = redis.call('HMGET', conf, 'paused', 'until')
if mode ~= 'pause' and c[1] ~= '1' and (tonumber(c[2] or '') or 0) <= now then
  part_reopen(base, p)  -- at its next turn a fetch decides again (its cap, its rate)
end
return changed
