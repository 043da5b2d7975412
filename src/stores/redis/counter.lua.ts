/**
 * The counter script: one atomic step over every window of one counter key (all keys share a hash tag).
 * KEYS: two per window — sliding: the log (ZSET id -> timestamp) and the amounts (HASH id -> amount, plus
 * field `#` = total); fixed: the period (HASH id -> leased amount, `#c` committed, `#p` leased) and the
 * leases (ZSET id -> expiry).
 * ARGV: op (`r` reserve, `s` settle, `p` peek), now, id, amount (reserve) or actual (settle),
 * leaseMs (reserve) or reserved (settle), then four per window: kind (`s`|`f`), limit, windowMs|start, end.
 * Reply: ok, then four per window: fits, used, resetAt, retryAfterMs (-1: can never fit).
 * Semantics match MemoryCounterStore exactly; the shared contract suite checks both.
 * The log is bounded as the memory store's is (LOG_CAP, LOG_BUCKETS in stores/memory/counter.ts): past CAP
 * entries, a settled reservation moves into the bucket member \`~<n>\` of its 1/BUCKETS of the window, scored
 * with the latest timestamp it holds (never earlier than its own), so the ZSET holds the open reservations
 * plus at most BUCKETS + 1 buckets per window however high the rate.
 */
export const COUNTER_LUA = `
local op = ARGV[1]
local now = tonumber(ARGV[2])
local id = ARGV[3]
local amount = tonumber(ARGV[4])
local extra = tonumber(ARGV[5])
local n = #KEYS / 2
local KEEP = 60000
local CAP = 1024
local BUCKETS = 128

-- Counts amt at time ts in sliding log (a, h) as its own member id, or, past CAP members, in its bucket.
local function put(a, h, p, id, ts, amt)
  if redis.call('ZCARD', a) >= CAP then
    local bms = math.max(1, math.floor(p / BUCKETS))
    local b = '~' .. math.floor(ts / bms)
    redis.call('HINCRBY', h, b, amt)
    local cur = tonumber(redis.call('ZSCORE', a, b))
    if not cur or cur < ts then redis.call('ZADD', a, ts, b) end
  else
    redis.call('ZADD', a, ts, id)
    redis.call('HSET', h, id, amt)
  end
end

-- Drops the members of zset z scored at or before cutoff, with their amounts in hash h, from h's total
-- field: entries that left a sliding window ('#'), or quota leases that expired ('#p').
local function dropUpTo(z, h, cutoff, totalField)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #gone == 0 then return end
  local freed = 0
  for _, m in ipairs(gone) do
    freed = freed + (tonumber(redis.call('HGET', h, m)) or 0)
    redis.call('HDEL', h, m)
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
  redis.call('HINCRBY', h, totalField, -freed)
end

local function win(i)
  local b = 5 + (i - 1) * 4
  return ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), KEYS[2 * i - 1], KEYS[2 * i]
end

local function state(i, amt)
  local kind, limit, p, e, a, h = win(i)
  local used, resetAt, retry
  if kind == 's' then
    dropUpTo(a, h, now - p, '#')
    used = tonumber(redis.call('HGET', h, '#')) or 0
    resetAt = now
    if used > 0 then
      local last = redis.call('ZRANGE', a, -1, -1, 'WITHSCORES')
      if #last == 2 then resetAt = tonumber(last[2]) + p end
    end
    if used + amt <= limit then retry = 0
    elseif amt > limit then retry = -1
    else
      local need = used + amt - limit
      local freed = 0
      local start = 0
      retry = p
      while freed < need do
        local batch = redis.call('ZRANGE', a, start, start + 99, 'WITHSCORES')
        if #batch == 0 then break end
        for j = 1, #batch, 2 do
          freed = freed + (tonumber(redis.call('HGET', h, batch[j])) or 0)
          if freed >= need then
            -- another process may have stamped its entry a few ms ahead of this caller's clock: never ask to wait longer than a window
            retry = math.min(p, math.max(1, tonumber(batch[j + 1]) + p - now))
            break
          end
        end
        start = start + 100
      end
    end
  else
    dropUpTo(h, a, now, '#p')
    used = (tonumber(redis.call('HGET', a, '#c')) or 0) + (tonumber(redis.call('HGET', a, '#p')) or 0)
    resetAt = e
    if used + amt <= limit then retry = 0
    elseif amt > limit then retry = -1
    else retry = math.max(0, e - now) end
  end
  local fits = 0
  if used + amt <= limit then fits = 1 end
  return fits, used, resetAt, retry
end

local function states(amt)
  local out = {}
  local ok = 1
  for i = 1, n do
    local fits, used, resetAt, retry = state(i, amt)
    if fits == 0 then ok = 0 end
    out[#out + 1] = fits
    out[#out + 1] = used
    out[#out + 1] = resetAt
    out[#out + 1] = retry
  end
  return ok, out
end

if op == 'r' then
  local ok, out = states(amount)
  if ok == 0 then
    table.insert(out, 1, 0)
    return out
  end
  for i = 1, n do
    local kind, limit, p, e, a, h = win(i)
    if kind == 's' then
      redis.call('ZADD', a, now, id)
      redis.call('HSET', h, id, amount)
      redis.call('HINCRBY', h, '#', amount)
      redis.call('PEXPIRE', a, p + KEEP)
      redis.call('PEXPIRE', h, p + KEEP)
    else
      redis.call('HSET', a, id, amount)
      redis.call('HINCRBY', a, '#p', amount)
      redis.call('ZADD', h, now + extra, id)
      local ttl = math.max(e - now, 0) + extra + KEEP
      redis.call('PEXPIRE', a, ttl)
      redis.call('PEXPIRE', h, ttl)
    end
  end
  local _, after = states(0)
  table.insert(after, 1, 1)
  return after
elseif op == 's' then
  for i = 1, n do
    local kind, limit, p, e, a, h = win(i)
    if kind == 's' then
      dropUpTo(a, h, now - p, '#')
      local old = tonumber(redis.call('HGET', h, id))
      if old then
        redis.call('HINCRBY', h, '#', amount - old)
        if amount == 0 then
          redis.call('HDEL', h, id)
          redis.call('ZREM', a, id)
        elseif redis.call('ZCARD', a) > CAP then
          -- settled: it needs no id any more; into the bucket of the time it was reserved at
          local ts = tonumber(redis.call('ZSCORE', a, id))
          redis.call('HDEL', h, id)
          redis.call('ZREM', a, id)
          put(a, h, p, id, ts, amount)
        else
          redis.call('HSET', h, id, amount)
        end
      elseif amount > extra then
        put(a, h, p, id, now, amount - extra)
        redis.call('HINCRBY', h, '#', amount - extra)
        redis.call('PEXPIRE', a, p + KEEP)
        redis.call('PEXPIRE', h, p + KEEP)
      end
    else
      dropUpTo(h, a, now, '#p')
      local old = tonumber(redis.call('HGET', a, id))
      if old then
        redis.call('HINCRBY', a, '#p', -old)
        redis.call('HDEL', a, id)
        redis.call('ZREM', h, id)
      end
      if amount > 0 and (old or now < e or redis.call('EXISTS', a) == 1) then
        redis.call('HINCRBY', a, '#c', amount)
        local ttl = math.max(e - now, 0) + KEEP
        if redis.call('PTTL', a) < ttl then redis.call('PEXPIRE', a, ttl) end
      end
    end
  end
  return {1}
else
  local ok, out = states(0)
  table.insert(out, 1, ok)
  return out
end
`
