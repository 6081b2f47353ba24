-- pinned: running jobs pinned to encoder identities that have encode
-- chunks waiting, for the coordinator's affinity check. Jobs that ended
-- leave P:pinned here.
-- KEYS: none (see lib.lua)
-- ARGV: prefix
-- Returns: n × (job_id, identities_json, demand_json, partition) flat.
local out = {}
for _, job in ipairs(redis.call('SMEMBERS', PINNED)) do
  local j = redis.call('HMGET', jk(job), 'state', 'identities')
  if not j[1] or is_terminal(j[1]) or not j[2] or j[2] == '' then
    redis.call('SREM', PINNED, job)
  else
    for _, tid in ipairs(tasks_of(job)) do
      local t = redis.call('HMGET', tk(tid), 'kind', 'state', 'demand', 'partition')
      if t[1] == 'Encode' and t[2] == 'Pending' then
        for _, v in ipairs({job, j[2], t[3] or '', t[4]}) do table.insert(out, v) end
        break
      end
    end
  end
end
return out
