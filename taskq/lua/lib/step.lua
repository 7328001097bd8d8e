-- Workflow steps (ops/stage.lua, ops/arrive.lua): a step waiting for its parents is in no list
-- and expires after `ttl` ms unless a parent is heard from; once every parent succeeded it
-- becomes ready like any new job, with its "enqueued" event.
-- @include lib/order
-- @include lib/events

local function keep_waiting(jk, ttl)
  redis.call('PEXPIRE', jk, ttl)
end

local function step_ready(base, id, jk, prio, task)
  redis.call('PERSIST', jk)
  emit(base, 'enqueued', id, task, '1')
  admit(base, id, jk, prio, false)
end
