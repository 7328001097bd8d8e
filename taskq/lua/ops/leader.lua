#!lua flags=allow-oom
-- leader: take, keep or give up the beat leader lease (it saves work; fire.lua keeps ticks exact).
-- allow-oom: one small key; the leader must keep its lease while Redis is at maxmemory.
-- KEYS[1] <ns>:beat:leader  string  the leading beat's id, expiring after the lease
-- ARGV: beat id, lease ms, mode ('hold' | 'resign')
-- hold returns 2 if the lease was just taken (a new term), 1 if renewed, 0 if another beat holds it.
-- resign returns 1 if this beat held the lease (now deleted), else 0.
local holder = redis.call('GET', KEYS[1])
if ARGV[3] == 'resign' then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
  return 0
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
