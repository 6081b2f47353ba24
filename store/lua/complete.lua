-- complete: record a task's result if the fencing token still holds; a
-- probe result comes with the tasks planned from it. Makes blocked tasks
-- whose dependencies are all done pending; a job whose every rendition is
-- stitched goes to Committing. A chunk with the wrong frame count fails the
-- chunk instead.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, task_id, attempt, kind, result_json, frames (-1: none),
--       now_ms, probe_json, job_order_span (JOB_ORDER_SPAN in core's
--       cost::place), n, then n × (id, kind, chunk, work_json,
--       deps_json, frames_total, class, demand_json, sessions)
-- Returns: the job state.
local id, attempt, kind, result = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local frames, now = tonumber(ARGV[6]), ARGV[7]
local job, err = fenced(id, attempt)
if not job then return err end
local t = redis.call('HMGET', tk(id), 'kind', 'frames_total')
if t[1] ~= kind then
  return redis.error_reply('INVALID result for task ' .. id .. ' is of the wrong kind')
end
if frames >= 0 and frames ~= tonumber(t[2]) then
  local msg = string.format('%s produced %d frames, the plan says %s', id, frames, t[2])
  record_failure(job, id, msg, true, now)
  return redis.error_reply('INVALID ' .. msg)
end
close_attempt(id, 'done', '', now)
redis.call('HSET', tk(id), 'state', 'Done', 'frames_done', t[2], 'result', result)
redis.call('ZREM', LEASED, id)
redis.call('HSET', jk(job), 'updated_unix_ms', now)
if kind == 'Probe' then
  redis.call('HSET', jk(job), 'probe', ARGV[8])
  local seq = tonumber(redis.call('HGET', jk(job), 'seq'))
  local base = tonumber(redis.call('LLEN', jk(job) .. ':tasks'))
  local partition = redis.call('HGET', jk(job), 'partition')
  local latency = 0
  if partition == 'OnDemand' then latency = 1 end
  local n, span = tonumber(ARGV[10]), tonumber(ARGV[9])
  for i = 0, n - 1 do
    local a = 11 + i * 9
    local nid, deps = ARGV[a], ARGV[a + 4]
    local order = seq * span + base + i
    redis.call('HSET', tk(nid), 'job_id', job, 'kind', ARGV[a + 1], 'chunk', ARGV[a + 2],
      'work', ARGV[a + 3], 'state', 'Blocked', 'deps', deps, 'attempt', 0, 'failures', 0,
      'expiries', 0, 'worker_id', '', 'lease_until_ms', 0, 'frames_done', 0,
      'frames_total', ARGV[a + 5], 'result', '', 'order', order,
      'partition', partition, 'pending_since_ms', now,
      'class', ARGV[a + 6], 'demand', ARGV[a + 7], 'sessions', ARGV[a + 8], 'latency', latency)
    redis.call('RPUSH', jk(job) .. ':tasks', nid)
    if deps == '[]' then make_pending(nid, now) end
  end
elseif kind == 'Stitch' then
  local all = true
  for _, tid in ipairs(tasks_of(job)) do
    local st = redis.call('HMGET', tk(tid), 'kind', 'state')
    if st[1] == 'Stitch' and st[2] ~= 'Done' then all = false break end
  end
  if all then
    redis.call('HSET', jk(job), 'state', 'Committing')
    redis.call('SADD', P .. ':committing', job)
  end
end
-- Unblock tasks whose dependencies are all done.
for _, tid in ipairs(tasks_of(job)) do
  local st = redis.call('HMGET', tk(tid), 'state', 'deps')
  if st[1] == 'Blocked' then
    local ready = true
    for _, d in ipairs(cjson.decode(st[2])) do
      if redis.call('HGET', tk(d), 'state') ~= 'Done' then ready = false break end
    end
    if ready then make_pending(tid, now) end
  end
end
return job_state(job)
