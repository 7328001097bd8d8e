-- The one place a job becomes ready: its id goes onto the ready list of its priority (at the
-- back, or at the front when it is given back), its status becomes 'queued', and an idle worker
-- is woken. A job due later waits in the scheduled set instead (schedule below).
-- Pushes are gathered per list and sent by ready_flush(), one command per list and batch: call
-- it before reading a ready list, and at the end of the script.
-- @include lib/keys
-- @include lib/wake
local pending = {}      -- ready list -> {back = {ids}, front = {ids}}
local pending_order = {}
local pending_bases = {}

local function pending_for(base, prio)
  local list = ready_key(base, prio)
  local entry = pending[list]
  if not entry then
    entry = {back = {}, front = {}}
    pending[list] = entry
    pending_order[#pending_order + 1] = list
    pending_bases[#pending_bases + 1] = base
  end
  return entry
end

local function ready(base, id, jk, prio, front)  -- jk false: the caller wrote status 'queued'
  if jk then redis.call('HSET', jk, 'status', 'queued') end
  local entry = pending_for(base, prio)
  local side = front and entry.front or entry.back
  side[#side + 1] = id
end

-- Many new jobs of one priority at once (bulk enqueue), their status already 'queued'.
local function ready_many(base, prio, ids)
  local back = pending_for(base, prio).back
  for i = 1, #ids do back[#back + 1] = ids[i] end
end

local function ready_flush()
  for i, list in ipairs(pending_order) do
    local entry = pending[list]
    local back, front = entry.back, entry.front
    for j = 1, #back, 1000 do  -- unpack() has a bounded stack
      redis.call('RPUSH', list, unpack(back, j, math.min(j + 999, #back)))
    end
    -- pushed in reverse, so the ids given back first stand first
    for j = #front, 1, -1 do redis.call('LPUSH', list, front[j]) end
    wake(pending_bases[i])
  end
  pending, pending_order, pending_bases = {}, {}, {}
end

-- A job due at `due` (unix ms) waits in the scheduled set, with status 'scheduled' (or
-- 'failed': an attempt failed and its retry waits; jk false: the caller wrote the status);
-- fetch and promote make it ready when due. An idle worker is woken to learn the new due time.
local function schedule(base, id, jk, due, status)
  redis.call('ZADD', base .. ':scheduled', due, id)
  if jk then redis.call('HSET', jk, 'status', status) end
  wake(base)
end
