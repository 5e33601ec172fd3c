-- Sold units come back (a refund), to the public or straight into a new hold.
-- ARGV: user, now ms, units JSON {tier: n} (general admission), offer JSON ('' or
--       {"id":..,"u":..,"ttl":..,"m":..}), seat ids...
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
local user, now = ARGV[1], tonumber(ARGV[2])
local back = cjson.decode(ARGV[3])
local offer = ARGV[4] ~= '' and cjson.decode(ARGV[4]) or nil
expire_due(now)
if offer and redis.call('EXISTS', P .. 'hold:' .. offer.id) == 1 then return fail('EXISTS') end
for t in pairs(back) do
  if redis.call('HGET', P .. 'tiers', t) ~= 'G' then return fail('NOT_GENERAL_ADMISSION') end
end
local seats = {}
for i = 5, #ARGV do
  local s = ARGV[i]
  if redis.call('HGET', P .. 'seats', s) ~= 'S' then return fail('NOT_SOLD', {seats = {s}}) end
  local t = redis.call('HGET', P .. 'seattier', s)
  seats[#seats + 1] = {s, t}
  back[t] = (back[t] or 0) + 1
end
local total = 0
for t, n in pairs(back) do
  if num('sold', t) < n then return fail('OVER_RETURN') end
  total = total + n
end
for t, n in pairs(back) do
  redis.call('HINCRBY', P .. 'sold', t, -n)
  redis.call('HINCRBY', P .. 'free', t, n)
  touch_tier(t)
end
for _, pair in ipairs(seats) do
  redis.call('HSET', P .. 'seats', pair[1], 'A')
  touch_seat(pair[1], 'A')
end
redis.call('HINCRBY', P .. 'users', user, -total)
if offer then
  create_hold(offer.id, offer.u, seats, back, {}, '', now + offer.ttl, offer.m)
  return hold_reply(offer.id, publish(false), now)
end
publish(false)
return cjson.encode({ok = true})
