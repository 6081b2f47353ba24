-- submit: create a job and its probe task, or return the job an earlier
-- submission with the same idempotency key and spec created (the same key
-- with another spec is refused).
-- KEYS: none (see lib.lua)
-- Refuses a job whose outputs are the input or an output of a running job,
-- or whose input is such an output (P:outpaths, P:inpaths).
-- ARGV: prefix, job_id, idempotency_key, now_ms, work_dir, spec_json,
--       max_attempts, probe_task_id, probe_work_json, partition,
--       escalate_after_attempts, escalate_after_wait_ms, input, client,
--       max_live (the client's jobs not ended; 0: no limit),
--       job_order_span (JOB_ORDER_SPAN in core's cost::place: the task
--       orders one job may use), then the outputs
-- Returns: the job id.
local job, key, now = ARGV[2], ARGV[3], ARGV[4]
if key ~= '' then
  local existing = redis.call('GET', P .. ':idem:' .. key)
  if existing then
    -- The same key for a different job is a client bug, not a retry.
    local spec = redis.call('HGET', jk(existing), 'spec')
    if spec and spec ~= ARGV[6] then
      return redis.error_reply('INVALID idempotency key "' .. key .. '" was used for job ' ..
        existing .. ' with a different spec; use a new key for a different job')
    end
    return existing
  end
end
local input = ARGV[13]
local holder = redis.call('HGET', OUTPATHS, input)
if holder and not is_terminal(job_state(holder)) then
  return redis.error_reply('INVALID input "' .. input .. '" is an output of running job ' .. holder)
end
for i = 17, #ARGV do
  local o = ARGV[i]
  local other = redis.call('HGET', OUTPATHS, o)
  if other and not is_terminal(job_state(other)) then
    return redis.error_reply('INVALID output "' .. o ..
      '" is the input or an output of running job ' .. other)
  end
  if tonumber(redis.call('HGET', INPATHS, o) or '0') > 0 then
    return redis.error_reply('INVALID output "' .. o ..
      '" is the input or an output of a running job')
  end
end
local client, max_live = ARGV[14], tonumber(ARGV[15])
local live = tonumber(redis.call('HGET', CLIENT_LIVE, client) or '0')
if max_live > 0 and live >= max_live then
  return redis.error_reply('EXHAUSTED client "' .. client .. '" has ' .. live ..
    ' jobs that have not ended, the most it may have queued or running (quotas.queued_jobs_per_client)')
end
redis.call('HINCRBY', CLIENT_LIVE, client, 1)
local seq = redis.call('INCR', P .. ':seq')
redis.call('HSET', jk(job), 'id', job, 'seq', seq, 'spec', ARGV[6], 'state', 'Queued',
  'error', '', 'idempotency_key', key, 'created_unix_ms', now, 'updated_unix_ms', now,
  'finished_unix_ms', 0, 'work_dir', ARGV[5], 'probe', '', 'max_attempts', ARGV[7],
  'partition', ARGV[10], 'escalate_attempts', ARGV[11], 'escalate_wait_ms', ARGV[12],
  'client', client, 'counted', 1)
local probe = ARGV[8]
local order = seq * tonumber(ARGV[16])
redis.call('HSET', tk(probe), 'job_id', job, 'kind', 'Probe', 'chunk', 0, 'work', ARGV[9],
  'state', 'Pending', 'deps', '[]', 'attempt', 0, 'failures', 0, 'expiries', 0,
  'worker_id', '', 'lease_until_ms', 0, 'frames_done', 0, 'frames_total', 0,
  'result', '', 'order', order, 'partition', ARGV[10], 'pending_since_ms', now)
redis.call('RPUSH', jk(job) .. ':tasks', probe)
local outs = {}
for i = 17, #ARGV do
  redis.call('HSET', OUTPATHS, ARGV[i], job)
  table.insert(outs, ARGV[i])
end
redis.call('HINCRBY', INPATHS, input, 1)
redis.call('HSET', jk(job), 'in_path', input, 'out_paths', cjson.encode(outs))
make_pending(probe, now)
redis.call('ZADD', P .. ':jobs', seq, job)
if key ~= '' then redis.call('SET', P .. ':idem:' .. key, job) end
return job
