#!lua
-- advance: for tests (taskq.testing.drain(advance=)): make the queue's clock seem `ms` later for
-- its scheduled jobs (delays and retry backoffs) by moving every due time `ms` earlier.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: ms
-- Returns how many scheduled jobs moved.
local scheduled = KEYS[1] .. ':scheduled'
local ms = tonumber(ARGV[1])
local entries = redis.call('ZRANGE', scheduled, 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  redis.call('ZADD', scheduled, tonumber(entries[i + 1]) - ms, entries[i])
end
return #entries / 2
