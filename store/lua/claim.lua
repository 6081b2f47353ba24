-- claim: lease the first task of placement's ranking that is still
-- pending; other workers and replicas may have taken the best ones since
-- the window was read. Records that the worker asked for work, whether
-- or not it gets any (called with no choices for an idle poll).
-- KEYS: none (see lib.lua)
-- ARGV: prefix, worker_id, now_ms, lease_ttl_ms, then per choice, best
--       first: task_id, rate_per_hour, on_demand (1/0), sessions,
--       identities_json (the worker's identity names for an encode chunk;
--       '' for other tasks)
-- Affinity: an encode chunk of a job pinned to other identities is passed
-- over (another replica may have pinned it since the window was read); the
-- first chunk leased pins the job.
-- Returns: nil when every choice is gone, else {task_id, job_id, attempt,
--          work_json, deps_json}.
local worker, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if not redis.call('HGET', P .. ':worker:' .. worker, 'capacity') then
  return redis.error_reply('NOTFOUND worker ' .. worker)
end
redis.call('ZADD', SEEN, now, worker)
for i = 5, #ARGV, 5 do
  local id, identities = ARGV[i], ARGV[i + 4]
  local t = redis.call('HMGET', tk(id), 'state', 'job_id')
  local jstate = job_state(t[2] or '')
  if t[1] == 'Pending' and jstate and not is_terminal(jstate) and jstate ~= 'Committing' then
    local pin = ''
    if identities ~= '' then pin = redis.call('HGET', jk(t[2]), 'identities') or '' end
    if pin == '' or pin == identities then
      if identities ~= '' and pin == '' then
        redis.call('HSET', jk(t[2]), 'identities', identities)
        redis.call('SADD', PINNED, t[2])
      end
      dequeue(id)
      return lease_task(id, worker, now, ttl, tonumber(ARGV[i + 1]), ARGV[i + 2] == '1',
        tonumber(ARGV[i + 3]), identities)
    end
  end
end
return false
