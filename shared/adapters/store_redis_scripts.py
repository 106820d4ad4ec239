"""Lua scripts that make the Redis engine's read-modify-write operations atomic.

Used only by `shared.adapters.store_redis.RedisStore`. Every script touches only the keys passed in
KEYS, and the engine gives those keys one hash tag, so each script runs on one Redis Cluster slot.
Times arrive as decimal strings in ARGV (the caller's `now`, never the server clock); numbers computed
here are returned and stored with `%.17g` so no precision is lost on the way back to Python.
Key TTLs (PEXPIRE, last ARGV) only garbage-collect: logical expiry is always the stored timestamp.
"""

from __future__ import annotations

# KEYS: record | ARGV: now, payload_hash, expiry_ts, in_progress_expiry_ts, pttl_ms, claim_token
# Returns false when the caller now owns the key, else the live record for Python to judge.
IDEM_CLAIM = """
local r = redis.call('HMGET', KEYS[1], 'status', 'payload_hash', 'expiry_ts', 'in_progress_expiry_ts', 'result')
local now = tonumber(ARGV[1])
if r[1] then
  local expired = now >= tonumber(r[3])
  if r[1] == 'IN_PROGRESS' and r[4] and r[4] ~= '' and now >= tonumber(r[4]) then expired = true end
  if not expired then
    return {r[1], r[2], r[3], r[4] or '', r[5] or ''}
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'IN_PROGRESS', 'payload_hash', ARGV[2], 'expiry_ts', ARGV[3],
  'in_progress_expiry_ts', ARGV[4], 'claim_token', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return false
"""

# KEYS: record | ARGV: payload_hash, expiry_ts, result_json, pttl_ms, claim_token
# Fenced: only the holder of the IN_PROGRESS claim may complete it (0 when the claim is gone or another's).
IDEM_COMPLETE = """
local r = redis.call('HMGET', KEYS[1], 'status', 'claim_token')
if r[1] ~= 'IN_PROGRESS' or r[2] ~= ARGV[5] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'COMPLETED', 'payload_hash', ARGV[1], 'expiry_ts', ARGV[2],
  'result', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: record | ARGV: claim_token
# Fenced like IDEM_COMPLETE: a late release never deletes a newer owner's claim.
IDEM_RELEASE = """
local r = redis.call('HMGET', KEYS[1], 'status', 'claim_token')
if r[1] == 'IN_PROGRESS' and r[2] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: records hash, lb index, new service index, pod index, old service index
# ARGV: field, expected current record ('' = absent), new record json ('' = delete)
# Compare-and-set: returns 0 when the record changed since the caller read it (caller re-reads).
BINDING_WRITE = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
if current ~= '' then redis.call('SREM', KEYS[5], ARGV[1]) end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[1])
end
return 1
"""

# KEYS: lease, fence counter | ARGV: holder, now, expires_at, pttl_ms
# The fence counter has no TTL, so a token never repeats even after the lease key itself is gone.
LEASE_ACQUIRE = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires_at')
if cur[1] and tonumber(cur[3]) > tonumber(ARGV[2]) then
  if cur[1] ~= ARGV[1] then return false end
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return cur[2]
end
local token = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'expires_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return tostring(token)
"""

# KEYS: lease | ARGV: holder, token, expires_at, pttl_ms
LEASE_RENEW = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: lease | ARGV: holder, token
LEASE_RELEASE = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: bucket | ARGV: rate_per_s, burst, n, now, pttl_ms, grant tolerance (s)
# Returns the wait in seconds ('0' = granted); mirrors store_rules.refill_and_take.
TAKE_TOKENS = """
local r = redis.call('HMGET', KEYS[1], 'tokens', 'updated_at')
local rate, burst, n, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, stamp = tonumber(r[1]), tonumber(r[2])
if tokens == nil or stamp == nil then tokens = burst; stamp = now end
local available = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = (n - available) / rate
if wait <= tonumber(ARGV[6]) then
  available = math.max(available - n, 0)
  wait = 0
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', available),
  'updated_at', string.format('%.17g', math.max(stamp, now)))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return string.format('%.17g', wait)
"""

# KEYS: data hash, by-time zset, by-expiry zset | ARGV: id, now, received_at, expires_at, wrapped json, pttl
# Purges expired events first (bounded per call), then inserts unless a live event has this id.
APPEND_EVENT = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, 500)
for _, id in ipairs(expired) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if score and tonumber(score) > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
local pttl = tonumber(ARGV[6])
for _, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < pttl) then redis.call('PEXPIRE', key, pttl) end
end
return 1
"""

# KEYS: kv | ARGV: value, expires_at ('' = never), pttl_ms ('' = none), only_if_absent ('1'/'0'), now
KV_SET = """
if ARGV[4] == '1' then
  local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
  if cur[1] and (not cur[2] or cur[2] == '' or tonumber(cur[2]) > tonumber(ARGV[5])) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2])
if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""

# KEYS: pending set
PENDING_TAKE = """
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return members
"""

# The schedule: KEYS: due zset (score = due time), payload hash, claim hash, attempts hash (one tag).
# ARGV: key, due_at, payload
SCHEDULE_PUT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], '')
redis.call('HSET', KEYS[4], ARGV[1], 0)
return 1
"""

# ARGV: now, limit, new due time (now + visibility), claim
# Returns flat [key, due score, payload, attempts, ...]; each taken item is due again at ARGV[3].
SCHEDULE_TAKE = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, key in ipairs(keys) do
  local due = redis.call('ZSCORE', KEYS[1], key)
  redis.call('ZADD', KEYS[1], ARGV[3], key)
  redis.call('HSET', KEYS[3], key, ARGV[4])
  local attempts = redis.call('HINCRBY', KEYS[4], key, 1)
  table.insert(out, key)
  table.insert(out, due)
  table.insert(out, redis.call('HGET', KEYS[2], key) or '')
  table.insert(out, tostring(attempts))
end
return out
"""

# ARGV: key, claim ('' = cancel whatever the claim)
SCHEDULE_REMOVE = """
if ARGV[2] ~= '' and redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return removed
"""
