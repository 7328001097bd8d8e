#!lua
-- release: give jobs a stopping worker holds back to the front of their ready lists, unblamed.
-- A job of an at_most_once task (field amo) whose body may have started (`ran`: the worker gives
-- back bodies it interrupted, past its grace or stopping at once) and that is running is
-- dead-lettered instead, reason 'lost: at_most_once': it may have done part of its work.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: ran ('1': the bodies may have started; '0': they never did), dead ttl ms, dead max, then
--   (id, token) pairs
-- Returns how many jobs were given back.
-- @include lib/now
-- @include lib/ready
-- @include lib/lease
-- @include lib/dead
local base = KEYS[1]
local ran = ARGV[1] == '1'
dead_ttl, dead_max = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = false
local n = 0
for i = #ARGV - 1, 4, -2 do  -- backwards: each goes to the front, so the first given stands first
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = job_key(base, id)
  local f = redis.call('HMGET', jk, 'token', 'priority', 'gate', 'part', 'status', 'amo')
  if f[1] == token then
    if ran and f[6] == '1' and f[5] == 'running' then
      now = now or now_ms()
      bury(base, id, jk, now, 'lost: at_most_once', nil)
    else
      drop_lease(base, id, jk, nil, f[3], f[4])
      ready(base, id, jk, priority_of(f[2]), true, f[4])
      n = n + 1
    end
  end
end
return n
