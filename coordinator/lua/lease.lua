-- lease: lease the oldest pending task to a worker, bumping its fencing
-- token and opening an attempt record.
-- KEYS: none (see lib.lua)
-- On-demand workers serve the OnDemand partition first, then Spot rather
-- than idle; spot workers serve only Spot.
-- ARGV: prefix, worker_id, now_ms, lease_ttl_ms
-- Returns: nil, or {task_id, job_id, attempt, work_json, deps_json}.
local worker, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local w = redis.call('HMGET', P .. ':worker:' .. worker, 'capacity', 'pool')
local capacity, pool = w[1], w[2] or ''
if not capacity then
  return redis.error_reply('NOTFOUND worker ' .. worker)
end
local partitions = {'Spot'}
if capacity == 'OnDemand' then partitions = {'OnDemand', 'Spot'} end
local function pop()
  for _, p in ipairs(partitions) do
    local popped = redis.call('ZPOPMIN', pending_key(p))
    if #popped > 0 then return popped[1] end
  end
  return nil
end
while true do
  local id = pop()
  if not id then return false end
  redis.call('ZREM', SPOT_DEADLINE, id)
  local t = redis.call('HMGET', tk(id), 'state', 'job_id', 'work', 'deps')
  local jstate = job_state(t[2])
  if t[1] == 'Pending' and not is_terminal(jstate) and jstate ~= 'Committing' then
    local attempt = redis.call('HINCRBY', tk(id), 'attempt', 1)
    redis.call('HSET', tk(id), 'state', 'Leased', 'worker_id', worker,
      'lease_until_ms', now + ttl, 'frames_done', 0)
    redis.call('ZADD', LEASED, now + ttl, id)
    redis.call('RPUSH', hk(id), cjson.encode({attempt = attempt, worker_id = worker,
      started_unix_ms = now, ended_unix_ms = 0, outcome = 'running', error = '',
      pool = pool, log_bytes = 0}))
    if jstate == 'Queued' then redis.call('HSET', jk(t[2]), 'state', 'Running') end
    redis.call('HSET', jk(t[2]), 'updated_unix_ms', now)
    return {id, t[2], attempt, t[3], t[4]}
  end
end
