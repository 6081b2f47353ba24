-- fail: record a failed attempt; requeue it, or fail the job when the
-- failure is not retryable or attempts ran out.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, task_id, attempt, error, retryable (1/0), now_ms, log
-- Returns: {job_id, job_state}.
local id, attempt, err, retryable, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1', ARGV[6]
local job, e = fenced(id, attempt)
if not job then return e end
record_failure(job, id, err, retryable, now)
keep_log(id, attempt, ARGV[7])
return {job, job_state(job)}
