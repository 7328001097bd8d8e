-- Where a job that has not started waits, and moving it: the one place a job leaves its place
-- without ending (cancel ends it right after; a debounced call, job.reschedule() and
-- job.set_priority() place it again). A queued job waits on its priority's ready list, in its
-- partition's lane (lib/part.lua), in its task's held line (lib/gate.lua) or behind its ordering
-- key (lib/order.lua); a scheduled one in the scheduled set; a reserved one is leased to a worker
-- that prefetched it (taken back: its token is deleted, so that worker's start is refused in
-- ops/fetch.lua and it never runs there).
-- @include lib/keys
-- @include lib/part
-- @include lib/gate
-- @include lib/lease
-- @include lib/order
-- @include lib/job

-- what a move reads of a job, in this order (placed_of)
local PLACE_FIELDS = {'status', 'priority', 'gate', 'part', 'order', 'expires_in', 'expires_at', 'debounce_by',
  'enqueued_ms'}

local function placed_of(jk)
  local f = redis.call('HMGET', jk, unpack(PLACE_FIELDS))
  return {status = f[1], prio = priority_of(f[2]), gate = f[3], part = f[4], order = f[5], expires_in = f[6],
    expires_at = f[7], debounce_by = f[8], enqueued = f[9]}
end

-- A job not started (status queued, scheduled or failed) out of the list or set it waits in.
-- Returns 'ready' (it was on a ready list or a lane), 'held' (its task's line), 'scheduled', or
-- false: a queued job waiting behind its ordering key (its key's line is the caller's to leave).
local function unplace(base, id, status, prio, gate, part)
  if status ~= 'queued' then
    redis.call('ZREM', base .. ':scheduled', id)
    return 'scheduled'
  end
  if redis.call('LREM', ready_key(base, prio), 1, id) == 1 then return 'ready' end
  if (part or is_fair(base)) and lane_remove(base, part or '', prio, id) then return 'ready' end
  if gate and drop_held(base, gate, id) then return 'held' end
  return false
end

-- A job not started (`w`: placed_of) taken back for a move: out of its place (unplace), or, if
-- reserved, its lease dropped ('reserved'); with `leave_line`, out of its ordering key's line too
-- (a job holding the key passes it on: it joins the line again where it is placed).
local function take_back(base, id, jk, w, leave_line)
  local where
  if w.status == 'reserved' then
    drop_lease(base, id, jk, nil, w.gate, w.part)
    where = 'reserved'
  else
    where = unplace(base, id, w.status, w.prio, w.gate, w.part)
  end
  if leave_line and w.order then release_order(base, id, w.order) end
  return where
end

-- A job taken back (take_back with leave_line) placed again, due at `due`: scheduled, or entering
-- the queue now (at the back of its ordering key's line, if it has one). A deadline given in
-- seconds (expires_in) counts from the new due time; one given as a datetime stays.
local function place_again(base, id, jk, w, due, now)
  if w.expires_in then
    local by = deadline(due, w.expires_in, w.expires_at)
    if by then redis.call('HSET', jk, 'expires_ms', by) end
  end
  if due > now then
    -- its place among jobs of its ordering key due at the same ms (lib/promote.lua)
    if w.order then redis.call('HSET', jk, 'oseq', redis.call('INCR', base .. ':oseq')) end
    -- a retry waiting (failed) keeps its status: its next attempt is only due at another time
    schedule(base, id, jk, due, w.status == 'failed' and 'failed' or 'scheduled')
  else
    admit(base, id, jk, w.prio, w.order, w.part or false)
  end
end
