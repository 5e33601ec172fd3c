-- Shared by every seat-ledger script (prepended to each one).
--
-- KEYS[1] is the session's key prefix "bo:{session:<id>}:". Every key a script touches is that
-- prefix plus a name, so all of them share the hash tag {session:<id>} and live in one Redis
-- Cluster slot: a script sees and changes one session atomically.
--
--   meta      HASH version                     (absent: the session is not loaded)
--   tiers     HASH tier -> "S" seated | "G" general admission
--   cap/free/held/sold/blocked  HASH tier -> units
--   quota     HASH tier.."\t"..channel -> units set aside;  qsum HASH tier -> their sum
--   seats     HASH seat -> "A" | "B" | "S" | "H:<hold>";  seattier HASH seat -> tier
--   rows      HASH tier -> JSON rows for best available (see layout.py)
--   hold:<id> HASH u user, s {seat: tier}, n {tier: units}, q {tier: from quota}, c channel,
--                  e expiry ms, st HELD|PENDING, m meta
--   holds     ZSET hold id -> expiry ms (held: the hold's TTL; pending: the order's expiry +
--             grace);  holdids SET every live hold id
--   users     HASH user -> units held, pending or sold
--   gone:<id> STRING why a hold ended (EXPIRED, RELEASED, CONFIRMED), kept an hour
--
-- Every change bumps meta.version and PUBLISHes {"v":version,"t":{tier:public},"s":{seat:st}}
-- on "<prefix>availability" in the same script, so the stream never disagrees with the state.

local P = KEYS[1]
local CHANNEL = P .. 'availability'
local changed_tiers, changed_seats = {}, {}
local changed = false

local function num(key, field)
  local v = redis.call('HGET', P .. key, field)
  if v then return tonumber(v) end
  return 0
end

local function public(tier)
  local p = num('free', tier) - num('qsum', tier)
  if p < 0 then return 0 end
  return p
end

local function usable(tier, channel)
  local u = public(tier)
  if channel ~= '' then u = u + num('quota', tier .. '\t' .. channel) end
  return u
end

local function touch_tier(t) changed_tiers[t] = true; changed = true end
local function touch_seat(s, st) changed_seats[s] = st; changed = true end

local function version_string(v) return string.format('%.0f', v) end

local function encode_map(t)
  if next(t) == nil then return '{}' end
  return cjson.encode(t)
end

-- Publish what changed (if anything); return the version as a string.
local function publish(full)
  if not changed and not full then
    return version_string(tonumber(redis.call('HGET', P .. 'meta', 'version') or '0'))
  end
  local v = version_string(redis.call('HINCRBY', P .. 'meta', 'version', 1))
  local tiers = {}
  for t in pairs(changed_tiers) do tiers[t] = public(t) end
  local message = '{"v":' .. v .. ',"t":' .. encode_map(tiers) .. ',"s":' .. encode_map(changed_seats)
  if full then message = message .. ',"f":true' end
  redis.call('PUBLISH', CHANNEL, message .. '}')
  return v
end

local function loaded()
  return redis.call('HEXISTS', P .. 'meta', 'version') == 1
end

-- Give a hold's units back to the free pool (and its channel quota); record why it ended.
local function give_back(id, why)
  local h = P .. 'hold:' .. id
  local d = redis.call('HMGET', h, 'u', 's', 'n', 'q', 'c')
  if not d[1] then return false end
  local seats, units, from_quota, channel = cjson.decode(d[2]), cjson.decode(d[3]), cjson.decode(d[4]), d[5]
  for seat in pairs(seats) do
    if redis.call('HGET', P .. 'seats', seat) == 'H:' .. id then
      redis.call('HSET', P .. 'seats', seat, 'A')
      touch_seat(seat, 'A')
    end
  end
  local total = 0
  for t, n in pairs(units) do
    redis.call('HINCRBY', P .. 'held', t, -n)
    redis.call('HINCRBY', P .. 'free', t, n)
    touch_tier(t)
    total = total + n
  end
  if channel ~= '' then
    for t, n in pairs(from_quota) do
      redis.call('HINCRBY', P .. 'quota', t .. '\t' .. channel, n)
      redis.call('HINCRBY', P .. 'qsum', t, n)
    end
  end
  redis.call('HINCRBY', P .. 'users', d[1], -total)
  redis.call('DEL', h)
  redis.call('ZREM', P .. 'holds', id)
  redis.call('SREM', P .. 'holdids', id)
  redis.call('SET', P .. 'gone:' .. id, why, 'PX', 3600000)
  return true
end

-- Release holds whose time is up (at most 200 per call; the sweeper comes back).
local function expire_due(now)
  local due = redis.call('ZRANGEBYSCORE', P .. 'holds', '-inf', now, 'LIMIT', 0, 200)
  for _, id in ipairs(due) do give_back(id, 'EXPIRED') end
  return due
end

-- Whether the caller must add this session to the sweeper's index (bo:ledger:active, another
-- hash slot, so not from here) for a hold lapsing at `e`. meta.tracked mirrors the earliest
-- time last asked for; while it is due no later than `e` and not yet past, the index already
-- brings the sweeper in time. A mirror in the past is distrusted (its add may have been lost),
-- so tracking heals at the next hold. Correctness never rests on it: every script expires due
-- holds first; the sweeper only makes releases reach clients without waiting for traffic.
local function needs_tracking(e, now)
  local tracked = tonumber(redis.call('HGET', P .. 'meta', 'tracked') or '0')
  if tracked > 0 and tracked <= e and tracked >= now then return false end
  redis.call('HSET', P .. 'meta', 'tracked', e)
  return true
end

-- The hold as JSON; with `now`, also "t":1 when the caller must track its expiry.
local function hold_reply(id, v, now)
  local d = redis.call('HMGET', P .. 'hold:' .. id, 'u', 's', 'n', 'e', 'st', 'm')
  local e = tonumber(d[4])
  local t = ''
  if now and needs_tracking(e, now) then t = ',"t":1' end
  return '{"ok":true,"v":' .. v .. t .. ',"hold":' .. cjson.encode({id = id, u = d[1],
    s = cjson.decode(d[2]), n = cjson.decode(d[3]), e = e, st = d[5], m = d[6]}) .. '}'
end

local function gone_error(id)
  if redis.call('GET', P .. 'gone:' .. id) == 'EXPIRED' then return 'HOLD_EXPIRED' end
  return 'HOLD_NOT_FOUND'
end

local function fail(err, extra)
  local v = publish(false)
  local reply = extra or {}
  reply.err = err
  return cjson.encode(reply)
end

-- Create a hold (the caller has checked availability). seats: list of {seat, tier}.
local function create_hold(id, user, seats, need, from_quota, channel, exp, meta)
  local seat_map, total = {}, 0
  for _, pair in ipairs(seats) do
    redis.call('HSET', P .. 'seats', pair[1], 'H:' .. id)
    touch_seat(pair[1], 'H')
    seat_map[pair[1]] = pair[2]
  end
  for t, n in pairs(need) do
    redis.call('HINCRBY', P .. 'free', t, -n)
    redis.call('HINCRBY', P .. 'held', t, n)
    touch_tier(t)
    total = total + n
  end
  for t, n in pairs(from_quota) do
    redis.call('HINCRBY', P .. 'quota', t .. '\t' .. channel, -n)
    redis.call('HINCRBY', P .. 'qsum', t, -n)
  end
  redis.call('HINCRBY', P .. 'users', user, total)
  redis.call('HSET', P .. 'hold:' .. id, 'u', user, 's', encode_map(seat_map), 'n', encode_map(need),
    'q', encode_map(from_quota), 'c', channel, 'e', exp, 'st', 'HELD', 'm', meta)
  redis.call('ZADD', P .. 'holds', exp, id)
  redis.call('SADD', P .. 'holdids', id)
end
