-- Shared helpers, prepended to every script by src/state/redis.rs.
-- Keys all live under the prefix ARGV[1] (also KEYS[1], for routing):
--   P:seq                  job sequence counter
--   P:jobs                 ZSET job id by submission sequence
--   P:idem:<key>           job id for an idempotency key
--   P:job:<id>             HASH job fields
--   P:job:<id>:tasks       LIST task ids in graph order
--   P:task:<id>            HASH task fields
--   P:task:<id>:history    LIST attempt records (flat JSON objects)
--   P:task:<id>:intr       HASH interruptions of the task by pool
--   P:task:<id>:log:<n>    STRING audit log of attempt n
--   P:pending:<partition>  ZSET pending task ids by (job seq, task order);
--                          partitions are Spot and OnDemand
--   P:pq:<partition>:<class>  ZSET the same tasks split by queue class
--                          (codec-band of the first output, or misc): the
--                          candidate window placement reads
--   P:seen                 ZSET worker ids by when they last asked for work
--   P:outpaths             HASH output path -> the running job writing it
--   P:inpaths              HASH input path -> running jobs reading it
--   P:model                HASH cost model: <key>#n and <key>#sum
--   P:poolstats            HASH by pool: <pool>#intr (interruptions),
--                          <pool>#secs (attempt seconds)
--   P:spot_deadline        ZSET pending spot task ids by the time they
--                          escalate to on-demand for waiting too long
--   P:leased               ZSET leased task ids by lease deadline (ms)
--   P:committing           SET job ids waiting for their commit
--   P:finished             ZSET ended job ids by when they ended (retention)
--   P:workers              ZSET worker ids by registration (retention)
--   P:client_live          HASH client -> its jobs that have not ended
--   P:pinned               SET job ids pinned to encoder identities (the
--                          job hash's `identities`, JSON names); jobs that
--                          ended leave it when pinned.lua reads it
--   P:worker:<id>          HASH registered worker: record (JSON), capacity,
--                          pool, sessions (NVENC sessions its leases hold)
-- Keys are derived from the prefix rather than passed in KEYS. The prefix
-- is a hash tag (`{spotenc}`), so every key hashes to one slot; KEYS[1] is
-- the prefix itself, which routes the script to the node owning that slot
-- on Redis Cluster.
local P = ARGV[1]
local LEASED = P .. ':leased'
local SPOT_DEADLINE = P .. ':spot_deadline'
local function pending_key(partition) return P .. ':pending:' .. partition end
local function pq_key(partition, class) return P .. ':pq:' .. partition .. ':' .. (class or 'misc') end
local SEEN = P .. ':seen'
local OUTPATHS = P .. ':outpaths'
local INPATHS = P .. ':inpaths'
local POOLSTATS = P .. ':poolstats'
local FINISHED = P .. ':finished'
local WORKERS = P .. ':workers'
local CLIENT_LIVE = P .. ':client_live'
local PINNED = P .. ':pinned'
local PARTITIONS = {'Spot', 'OnDemand'}
local function jk(id) return P .. ':job:' .. id end
local function tk(id) return P .. ':task:' .. id end
local function hk(id) return P .. ':task:' .. id .. ':history' end
local function tasks_of(job) return redis.call('LRANGE', jk(job) .. ':tasks', 0, -1) end

local function is_terminal(state)
  return state == 'Succeeded' or state == 'Failed' or state == 'Cancelled'
end

local function close_attempt(task_id, outcome, err, now)
  local last = redis.call('LINDEX', hk(task_id), -1)
  if not last then return end
  local a = cjson.decode(last)
  if tonumber(a.ended_unix_ms) == 0 then
    a.ended_unix_ms = tonumber(now)
    a.outcome = outcome
    a.error = err
    local secs = math.max(0, tonumber(now) - tonumber(a.started_unix_ms)) / 1000
    a.cost_dollars = (tonumber(a.rate_per_hour) or 0) * secs / 3600
    redis.call('LSET', hk(task_id), -1, cjson.encode(a))
    local pool = a.pool or ''
    redis.call('HINCRBYFLOAT', POOLSTATS, pool .. '#secs', secs)
    if outcome == 'interrupted' then redis.call('HINCRBY', POOLSTATS, pool .. '#intr', 1) end
    local sessions = tonumber(a.sessions) or 0
    if sessions > 0 then
      redis.call('HINCRBY', P .. ':worker:' .. a.worker_id, 'sessions', -sessions)
    end
  end
end

-- Re-labels a task's last 'done' attempt (a restart discards it, the
-- outlier guard rejects it) with `outcome` and `err`, after `amend(record)`
-- when given; returns the record, or nil when no attempt was done.
local function relabel_done(task_id, outcome, err, amend)
  local n = redis.call('LLEN', hk(task_id))
  for i = n - 1, 0, -1 do
    local a = cjson.decode(redis.call('LINDEX', hk(task_id), i))
    if a.outcome == 'done' then
      a.outcome = outcome
      a.error = err
      if amend then amend(a) end
      redis.call('LSET', hk(task_id), i, cjson.encode(a))
      return a
    end
  end
  return nil
end

-- Queues a task in its partition; a spot task also gets the deadline after
-- which waiting escalates it.
local function make_pending(task_id, now)
  local t = redis.call('HMGET', tk(task_id), 'order', 'partition', 'job_id', 'class')
  redis.call('HSET', tk(task_id), 'state', 'Pending', 'pending_since_ms', now)
  redis.call('ZREM', LEASED, task_id)
  redis.call('ZADD', pending_key(t[2]), tonumber(t[1]), task_id)
  redis.call('ZADD', pq_key(t[2], t[4]), tonumber(t[1]), task_id)
  if t[2] == 'Spot' then
    local wait = tonumber(redis.call('HGET', jk(t[3]), 'escalate_wait_ms'))
    redis.call('ZADD', SPOT_DEADLINE, tonumber(now) + wait, task_id)
  end
end

-- Stores an ended attempt's audit log and notes its size in the attempt
-- record.
local function keep_log(task_id, attempt, log)
  if log == '' then return end
  redis.call('SET', tk(task_id) .. ':log:' .. attempt, log)
  local last = redis.call('LINDEX', hk(task_id), -1)
  if not last then return end
  local a = cjson.decode(last)
  if tonumber(a.attempt) == tonumber(attempt) then
    a.log_bytes = #log
    redis.call('LSET', hk(task_id), -1, cjson.encode(a))
  end
end

local function dequeue(task_id)
  local class = redis.call('HGET', tk(task_id), 'class')
  for _, p in ipairs(PARTITIONS) do
    redis.call('ZREM', pending_key(p), task_id)
    redis.call('ZREM', pq_key(p, class), task_id)
  end
  redis.call('ZREM', SPOT_DEADLINE, task_id)
end

-- The most interruptions of a task by any one pool.
local function max_interruptions(task_id)
  local most = 0
  for _, n in ipairs(redis.call('HVALS', tk(task_id) .. ':intr')) do
    most = math.max(most, tonumber(n))
  end
  return most
end

-- Requeues a failed, expired or interrupted task; a spot task moves to
-- on-demand first once its failures, expired leases and the most
-- interruptions by one pool add up to the job's escalation limit.
local function requeue(job, task_id, now)
  local t = redis.call('HMGET', tk(task_id), 'partition', 'failures', 'expiries')
  local limit = tonumber(redis.call('HGET', jk(job), 'escalate_attempts'))
  local count = tonumber(t[2]) + tonumber(t[3]) + max_interruptions(task_id)
  if t[1] == 'Spot' and count >= limit then
    redis.call('HSET', tk(task_id), 'partition', 'OnDemand')
    dequeue(task_id)
  end
  make_pending(task_id, now)
end

-- Frees a job's input and output paths for other jobs.
local function release_paths(job)
  -- The job no longer counts towards its client's quota (once).
  if redis.call('HDEL', jk(job), 'counted') == 1 then
    redis.call('HINCRBY', CLIENT_LIVE, redis.call('HGET', jk(job), 'client') or '', -1)
  end
  local h = redis.call('HMGET', jk(job), 'in_path', 'out_paths')
  if h[1] and redis.call('HINCRBY', INPATHS, h[1], -1) <= 0 then
    redis.call('HDEL', INPATHS, h[1])
  end
  if h[2] then
    for _, o in ipairs(cjson.decode(h[2])) do
      if redis.call('HGET', OUTPATHS, o) == job then redis.call('HDEL', OUTPATHS, o) end
    end
  end
  redis.call('HDEL', jk(job), 'in_path', 'out_paths')
end

-- Cancels every unfinished task of a job that just ended.
local function end_job(job, now)
  release_paths(job)
  redis.call('HSET', jk(job), 'finished_unix_ms', now, 'updated_unix_ms', now)
  redis.call('ZADD', FINISHED, now, job)
  redis.call('SREM', P .. ':committing', job)
  for _, t in ipairs(tasks_of(job)) do
    local st = redis.call('HGET', tk(t), 'state')
    if st == 'Leased' then close_attempt(t, 'cancelled', 'job ended', now) end
    if st ~= 'Done' and st ~= 'Failed' then
      redis.call('HSET', tk(t), 'state', 'Cancelled')
      dequeue(t)
      redis.call('ZREM', LEASED, t)
    end
  end
end

local function fail_job(job, err, now)
  if is_terminal(redis.call('HGET', jk(job), 'state')) then return end
  redis.call('HSET', jk(job), 'state', 'Failed', 'error', err)
  end_job(job, now)
end

-- The job id if `attempt` still holds the task's lease, else nil and an
-- error reply.
local function fenced(task_id, attempt)
  local t = redis.call('HMGET', tk(task_id), 'state', 'attempt', 'job_id')
  if not t[1] then return nil, redis.error_reply('NOTFOUND task ' .. task_id) end
  if t[1] ~= 'Leased' or tonumber(t[2]) ~= tonumber(attempt) then
    return nil, redis.error_reply(string.format(
      'STALE task %s attempt %s does not hold the lease (attempt %s is %s)',
      task_id, attempt, t[2], t[1]))
  end
  return t[3]
end

-- A failed attempt: requeue, or end the job once attempts run out.
local function record_failure(job, task_id, err, retryable, now)
  close_attempt(task_id, 'failed', err, now)
  redis.call('ZREM', LEASED, task_id)
  local failures = redis.call('HINCRBY', tk(task_id), 'failures', 1)
  local max_attempts = tonumber(redis.call('HGET', jk(job), 'max_attempts'))
  if not retryable or failures >= max_attempts then
    local msg = err
    if retryable then msg = string.format('%s failed %d times, last: %s', task_id, failures, err) end
    redis.call('HSET', tk(task_id), 'state', 'Pending')
    fail_job(job, msg, now)
  else
    requeue(job, task_id, now)
  end
end

local function job_state(job) return redis.call('HGET', jk(job), 'state') end

-- Leases a pending task to a worker: bumps the fencing token and opens an
-- attempt priced at rate_per_hour ($/h for the share of the worker it
-- holds), holding `sessions` NVENC sessions of the worker; `identities`
-- is an encode attempt's identity names as JSON (nil or '': none).
local function lease_task(id, worker, now, ttl, rate, on_demand, sessions, identities)
  local t = redis.call('HMGET', tk(id), 'job_id', 'work', 'deps')
  local pool = redis.call('HGET', P .. ':worker:' .. worker, 'pool') or ''
  local attempt = redis.call('HINCRBY', tk(id), 'attempt', 1)
  redis.call('HSET', tk(id), 'state', 'Leased', 'worker_id', worker,
    'lease_until_ms', now + ttl, 'frames_done', 0)
  redis.call('ZADD', LEASED, now + ttl, id)
  local a = {attempt = attempt, worker_id = worker,
    started_unix_ms = now, ended_unix_ms = 0, outcome = 'running', error = '',
    pool = pool, log_bytes = 0, rate_per_hour = rate, on_demand = on_demand,
    sessions = sessions, cost_dollars = 0}
  -- Only a non-empty list: cjson writes an empty table as an object.
  if identities and identities ~= '' and identities ~= '[]' then
    a.identities = cjson.decode(identities)
  end
  redis.call('RPUSH', hk(id), cjson.encode(a))
  if sessions > 0 then
    redis.call('HINCRBY', P .. ':worker:' .. worker, 'sessions', sessions)
  end
  if job_state(t[1]) == 'Queued' then redis.call('HSET', jk(t[1]), 'state', 'Running') end
  redis.call('HSET', jk(t[1]), 'updated_unix_ms', now)
  return {id, t[1], attempt, t[2], t[3]}
end
