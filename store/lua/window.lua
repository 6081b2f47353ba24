-- window: the candidates cost-aware placement chooses from for one worker:
-- the oldest `per_class` pending tasks of each queue class in the worker's
-- partitions. The choice is made in Rust (cost::place) and claimed with
-- claim.lua, which also records that the worker asked for work. This
-- script writes nothing, so under `appendfsync always` a lease costs one
-- fsync, not two.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, worker_id, now_ms, per_class, then the queue classes
-- Returns: {sessions_held, n, then n × (task_id, job_id, partition, order,
--          pending_since_ms, latency (1/0), demand_json, identities_json
--          (the job's pin; '' when unpinned), avoid (the worker a chunk the
--          outlier guard sent back avoids; '' for others))}, or an error if
--          the worker is unknown.
local worker, k = ARGV[2], tonumber(ARGV[4])
local w = redis.call('HMGET', P .. ':worker:' .. worker, 'capacity', 'sessions')
if not w[1] then
  return redis.error_reply('NOTFOUND worker ' .. worker)
end
local partitions = {'Spot'}
if w[1] == 'OnDemand' then partitions = {'OnDemand', 'Spot'} end
local out = {}
local n = 0
for _, p in ipairs(partitions) do
  for i = 5, #ARGV do
    local pair = redis.call('ZRANGE', pq_key(p, ARGV[i]), 0, k - 1, 'WITHSCORES')
    for j = 1, #pair, 2 do
      local id = pair[j]
      local t = redis.call('HMGET', tk(id), 'job_id', 'pending_since_ms', 'demand', 'state',
        'latency', 'avoid')
      if t[4] == 'Pending' then
        -- A probe (made at submission) has no latency field: ask its job.
        local latency = t[5]
        if not latency then
          latency = '0'
          if redis.call('HGET', jk(t[1]), 'partition') == 'OnDemand' then latency = '1' end
        end
        local pin = redis.call('HGET', jk(t[1]), 'identities') or ''
        local fields = {id, t[1], p, pair[j + 1], t[2] or '0', latency, t[3] or '', pin, t[6] or ''}
        for _, v in ipairs(fields) do
          table.insert(out, v)
        end
        n = n + 1
      end
    end
  end
end
return {tonumber(w[2]) or 0, n, out}
