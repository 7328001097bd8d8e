#!lua
-- release: give jobs a stopping worker holds back to the front of their ready lists, unblamed.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: (id, token) pairs
-- Returns how many jobs were given back.
-- @include lib/ready
-- @include lib/lease
local base = KEYS[1]
local n = 0
for i = #ARGV - 1, 1, -2 do  -- backwards: each goes to the front, so the first given stands first
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = job_key(base, id)
  local f = redis.call('HMGET', jk, 'token', 'priority', 'gate', 'part')
  if f[1] == token then
    drop_lease(base, id, jk, nil, f[3], f[4])
    ready(base, id, jk, priority_of(f[2]), true, f[4])
    n = n + 1
  end
end
return n
