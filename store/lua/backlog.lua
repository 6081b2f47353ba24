-- backlog: what the capacity planner needs, read-only: every pending and
-- leased task's partition, latency flag and demand, and each leased task's
-- worker.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, then the queue classes
-- Returns: {n, n × (partition, latency (1/0), demand_json,
--          pending_since_ms, running (1/0), pool it runs on), then the
--          worker id of each leased task}
local out = {}
local n = 0
for _, p in ipairs(PARTITIONS) do
  for i = 2, #ARGV do
    for _, id in ipairs(redis.call('ZRANGE', pq_key(p, ARGV[i]), 0, -1)) do
      local t = redis.call('HMGET', tk(id), 'job_id', 'demand', 'state', 'latency',
        'pending_since_ms')
      if t[3] == 'Pending' then
        local latency = t[4]
        if not latency then
          latency = '0'
          if redis.call('HGET', jk(t[1]), 'partition') == 'OnDemand' then latency = '1' end
        end
        table.insert(out, p)
        table.insert(out, latency)
        table.insert(out, t[2] or '')
        table.insert(out, t[5] or '0')
        table.insert(out, '0')
        table.insert(out, '')
        n = n + 1
      end
    end
  end
end
local workers = {}
for _, id in ipairs(redis.call('ZRANGE', LEASED, 0, -1)) do
  local t = redis.call('HMGET', tk(id), 'job_id', 'demand', 'partition', 'latency',
    'pending_since_ms', 'worker_id')
  local latency = t[4]
  if not latency then
    latency = '0'
    if redis.call('HGET', jk(t[1]), 'partition') == 'OnDemand' then latency = '1' end
  end
  local pool = ''
  local last = redis.call('LINDEX', hk(id), -1)
  if last then pool = cjson.decode(last).pool or '' end
  for _, v in ipairs({t[3] or 'Spot', latency, t[2] or '', t[5] or '0', '1', pool}) do
    table.insert(out, v)
  end
  n = n + 1
  table.insert(workers, t[6] or '')
end
return {n, out, workers}
