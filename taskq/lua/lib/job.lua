-- append a field name and value to a list of them
local function add_fields(list, name, value)
  list[#list + 1] = name
  list[#list + 1] = value
end

-- create_job: a new job record (the message, its task's name, and the counters the other scripts
-- rely on), and its "enqueued" event. `extra` is a list of name, value pairs stored with it.
-- @include lib/events
local function create_job(base, id, jk, body, prio, now, task, extra)
  if task and task ~= '' then add_fields(extra, 'task', task) end
  -- deliveries and lost are left out: absent reads as 0 (a field less is ~50 bytes of a hash table)
  redis.call('HSET', jk, 'msg', body, 'priority', prio, 'enqueued_ms', now, unpack(extra))
  emit(base, 'enqueued', id, task, '1')
end
