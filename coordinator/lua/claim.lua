-- claim: lease the task placement chose, if it is still pending; another
-- replica may have taken it since the window was read.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, worker_id, now_ms, lease_ttl_ms, task_id, rate_per_hour,
--       on_demand (1/0), sessions
-- Returns: nil when the task is gone, else {task_id, job_id, attempt,
--          work_json, deps_json}.
local worker, now, ttl, id = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if not redis.call('HGET', P .. ':worker:' .. worker, 'capacity') then
  return redis.error_reply('NOTFOUND worker ' .. worker)
end
local t = redis.call('HMGET', tk(id), 'state', 'job_id')
if t[1] ~= 'Pending' then return false end
local jstate = job_state(t[2])
if is_terminal(jstate) or jstate == 'Committing' then return false end
dequeue(id)
return lease_task(id, worker, now, ttl, tonumber(ARGV[6]), ARGV[7] == '1', tonumber(ARGV[8]))
