-- cancel: end a job that has not ended (refused once it is committing); its
-- leased tasks learn it at their next heartbeat.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, job_id, now_ms
-- Returns: the job state.
local job, now = ARGV[2], ARGV[3]
local st = job_state(job)
if not st then return redis.error_reply('NOTFOUND job ' .. job) end
if st == 'Committing' then
  return redis.error_reply('STALE job ' .. job .. ' is committing its outputs and can no longer be cancelled')
end
if not is_terminal(st) then
  redis.call('HSET', jk(job), 'state', 'Cancelled', 'error', 'cancelled')
  end_job(job, now)
end
return job_state(job)
