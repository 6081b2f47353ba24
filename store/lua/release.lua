-- release: undoes a lease its worker never received (the LeaseTask call
-- was dropped, or signing its URLs failed). The attempt ends as 'released'
-- and the task is pending again at once; nothing is counted against the
-- task, the worker or its pool.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, task_id, attempt, reason, now_ms
-- Returns: {job_id, job_state}.
local id, attempt, reason, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job, e = fenced(id, attempt)
if not job then return e end
close_attempt(id, 'released', reason, now)
redis.call('ZREM', LEASED, id)
requeue(job, id, now)
return {job, job_state(job)}
