-- submit: create a job and its probe task, or return the job an earlier
-- submission with the same idempotency key created.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, job_id, idempotency_key, now_ms, work_dir, spec_json,
--       max_attempts, probe_task_id, probe_work_json, partition,
--       escalate_after_attempts, escalate_after_wait_ms
-- Returns: the job id.
local job, key, now = ARGV[2], ARGV[3], ARGV[4]
if key ~= '' then
  local existing = redis.call('GET', P .. ':idem:' .. key)
  if existing then return existing end
end
local seq = redis.call('INCR', P .. ':seq')
redis.call('HSET', jk(job), 'id', job, 'seq', seq, 'spec', ARGV[6], 'state', 'Queued',
  'error', '', 'idempotency_key', key, 'created_unix_ms', now, 'updated_unix_ms', now,
  'finished_unix_ms', 0, 'work_dir', ARGV[5], 'probe', '', 'max_attempts', ARGV[7],
  'partition', ARGV[10], 'escalate_attempts', ARGV[11], 'escalate_wait_ms', ARGV[12])
local probe = ARGV[8]
local order = seq * 1000000
redis.call('HSET', tk(probe), 'job_id', job, 'kind', 'Probe', 'chunk', 0, 'work', ARGV[9],
  'state', 'Pending', 'deps', '[]', 'attempt', 0, 'failures', 0, 'expiries', 0,
  'worker_id', '', 'lease_until_ms', 0, 'frames_done', 0, 'frames_total', 0,
  'result', '', 'order', order, 'partition', ARGV[10], 'pending_since_ms', now)
redis.call('RPUSH', jk(job) .. ':tasks', probe)
make_pending(probe, now)
redis.call('ZADD', P .. ':jobs', seq, job)
if key ~= '' then redis.call('SET', P .. ':idem:' .. key, job) end
return job
