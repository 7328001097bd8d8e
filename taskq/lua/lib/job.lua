-- append a field name and value to a list of them
local function add_fields(list, name, value)
  list[#list + 1] = name
  list[#list + 1] = value
end

-- create_job: a new job record (the message and the counters the other scripts rely on).
-- `extra` is a list of name, value pairs stored with it.
local function create_job(jk, body, prio, now, extra)
  redis.call('HSET', jk, 'msg', body, 'priority', prio, 'enqueued_ms', now, 'deliveries', 0, 'lost', 0,
    unpack(extra))
end
