-- wake(base): make sure a wake-up token waits on the queue's notify list for idle workers.
-- One token is enough: a worker that takes it and leaves ready jobs behind passes it on
-- (fetch.lua), so a burst reaches every idle worker one hop at a time, and tokens never pile up.
local woken = {}
local function wake(base)
  if woken[base] then return end
  woken[base] = true
  local notify = base .. ':notify'
  if redis.call('LLEN', notify) == 0 then redis.call('LPUSH', notify, '1') end
end
