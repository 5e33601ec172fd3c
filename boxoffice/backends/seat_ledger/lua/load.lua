-- Replace the session's state with the database's truth.
-- ARGV: now ms, spec JSON {"tiers":[{"id","cap","seated","quotas":{ch:n}}],
--   "seats":[[id, tier, blocked 0/1], ...], "rows":{tier: rows JSON string},
--   "taken":[{"id","u","seats":[..],"units":{tier:n},"sold":bool,"until":ms}]}
-- ARGV[3]: '1' replaces a loaded session, '0' leaves it alone (replies its version).
-- The new version is max(old + 1, now * 1000), so versions only ever increase, even when
-- Redis lost the session (clients compare versions to notice gaps).
if ARGV[3] == '0' and loaded() then
  return '{"ok":true,"v":' .. version_string(tonumber(redis.call('HGET', P .. 'meta', 'version'))) .. '}'
end
local now = tonumber(ARGV[1])
local spec = cjson.decode(ARGV[2])
local old = tonumber(redis.call('HGET', P .. 'meta', 'version') or '0')
for _, id in ipairs(redis.call('SMEMBERS', P .. 'holdids')) do redis.call('DEL', P .. 'hold:' .. id) end
for _, name in ipairs({'meta', 'tiers', 'cap', 'free', 'held', 'sold', 'blocked', 'quota', 'qsum',
                       'seats', 'seattier', 'rows', 'holds', 'holdids', 'users'}) do
  redis.call('DEL', P .. name)
end
local new_version = math.max(old + 1, now * 1000)
for _, t in ipairs(spec.tiers) do
  redis.call('HSET', P .. 'tiers', t.id, t.seated and 'S' or 'G')
  redis.call('HSET', P .. 'cap', t.id, t.cap)
  redis.call('HSET', P .. 'free', t.id, t.cap)
  redis.call('HSET', P .. 'held', t.id, 0)
  redis.call('HSET', P .. 'sold', t.id, 0)
  redis.call('HSET', P .. 'blocked', t.id, 0)
  local qsum = 0
  for ch, n in pairs(t.quotas) do
    redis.call('HSET', P .. 'quota', t.id .. '\t' .. ch, n)
    qsum = qsum + n
  end
  redis.call('HSET', P .. 'qsum', t.id, qsum)
  touch_tier(t.id)
end
for tier, rows in pairs(spec.rows) do redis.call('HSET', P .. 'rows', tier, rows) end
for _, s in ipairs(spec.seats) do
  redis.call('HSET', P .. 'seattier', s[1], s[2])
  if s[3] == 1 then
    redis.call('HSET', P .. 'seats', s[1], 'B')
    redis.call('HINCRBY', P .. 'free', s[2], -1)
    redis.call('HINCRBY', P .. 'blocked', s[2], 1)
    touch_seat(s[1], 'B')
  else
    redis.call('HSET', P .. 'seats', s[1], 'A')
    touch_seat(s[1], 'A')
  end
end
for _, taken in ipairs(spec.taken) do
  local units = taken.units
  local seat_map = {}
  local state = taken.sold and 'S' or ('H:' .. taken.id)
  for _, s in ipairs(taken.seats) do
    local t = redis.call('HGET', P .. 'seattier', s)
    units[t] = (units[t] or 0) + 1
    seat_map[s] = t
    redis.call('HSET', P .. 'seats', s, state)
    touch_seat(s, string.sub(state, 1, 1))
  end
  local total = 0
  for t, n in pairs(units) do
    redis.call('HINCRBY', P .. 'free', t, -n)
    redis.call('HINCRBY', P .. (taken.sold and 'sold' or 'held'), t, n)
    total = total + n
  end
  redis.call('HINCRBY', P .. 'users', taken.u, total)
  if not taken.sold then
    redis.call('HSET', P .. 'hold:' .. taken.id, 'u', taken.u, 's', encode_map(seat_map), 'n', encode_map(units),
      'q', '{}', 'c', '', 'e', taken['until'], 'st', 'PENDING', 'm', '')
    redis.call('SADD', P .. 'holdids', taken.id)
    if taken['until'] > 0 then redis.call('ZADD', P .. 'holds', taken['until'], taken.id) end
  end
end
redis.call('HSET', P .. 'meta', 'version', version_string(new_version - 1))
return '{"ok":true,"v":' .. publish(true) .. '}'
