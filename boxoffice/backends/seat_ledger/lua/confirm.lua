-- Paid: the hold's units become sold. ARGV: hold id. Replies {"ok":true,"confirmed":bool}.
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
local id = ARGV[1]
local h = P .. 'hold:' .. id
local d = redis.call('HMGET', h, 's', 'n')
if not d[1] then return cjson.encode({ok = true, confirmed = false}) end
for seat in pairs(cjson.decode(d[1])) do
  redis.call('HSET', P .. 'seats', seat, 'S')
  touch_seat(seat, 'S')
end
for t, n in pairs(cjson.decode(d[2])) do
  redis.call('HINCRBY', P .. 'held', t, -n)
  redis.call('HINCRBY', P .. 'sold', t, n)
  touch_tier(t)
end
redis.call('DEL', h)
redis.call('ZREM', P .. 'holds', id)
redis.call('SREM', P .. 'holdids', id)
redis.call('SET', P .. 'gone:' .. id, 'CONFIRMED', 'PX', 3600000)
publish(false)
return cjson.encode({ok = true, confirmed = true})
