-- End a hold and pass its units straight into new holds (waitlist offers): they are never
-- available to the public in between; what no offer takes goes back to the public.
-- ARGV: hold id, now ms, only held ('1' refuses a hold an order owns), offers JSON
--       [{"id":..,"u":..,"ttl":..,"m":..,"seats":[seat ids],"tier":..,"n":units}, ...]
--       (each offer takes the named seats of the hold, or n general-admission units of tier).
-- All or nothing: on any error nothing changes (except holds that were due to expire).
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
local id, now, only_held = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local offers = cjson.decode(ARGV[4])
expire_due(now)
local d = redis.call('HMGET', P .. 'hold:' .. id, 'u', 's', 'n', 'c', 'st')
if not d[1] then return fail(gone_error(id)) end
if d[4] ~= '' then return fail('CHANNEL_HOLD') end
if only_held and d[5] == 'PENDING' then return fail('HOLD_ORDERED') end
local seats_left, units_left = cjson.decode(d[2]), cjson.decode(d[3])
for _, t in pairs(seats_left) do units_left[t] = units_left[t] - 1 end
local plan, seen = {}, {[id] = true}
for i, o in ipairs(offers) do
  if seen[o.id] or redis.call('EXISTS', P .. 'hold:' .. o.id) == 1 then return fail('EXISTS') end
  seen[o.id] = true
  local seats, need = {}, {}
  if #o.seats > 0 then
    for _, s in ipairs(o.seats) do
      local t = seats_left[s]
      if not t then return fail('NOT_IN_HOLD', {seats = {s}}) end
      seats_left[s] = nil
      seats[#seats + 1] = {s, t}
      need[t] = (need[t] or 0) + 1
    end
  else
    local n = tonumber(o.n) or 0
    if n <= 0 or (units_left[o.tier] or 0) < n then return fail('NOT_IN_HOLD') end
    units_left[o.tier] = units_left[o.tier] - n
    need[o.tier] = n
  end
  plan[i] = {o, seats, need}
end
give_back(id, 'HANDED_OVER')
for _, p in ipairs(plan) do
  create_hold(p[1].id, p[1].u, p[2], p[3], {}, '', now + p[1].ttl, p[1].m)
end
local v = publish(false)
local holds = {}
for i, p in ipairs(plan) do
  local h = redis.call('HMGET', P .. 'hold:' .. p[1].id, 'u', 's', 'n', 'e', 'st', 'm')
  holds[i] = {id = p[1].id, u = h[1], s = cjson.decode(h[2]), n = cjson.decode(h[3]),
    e = tonumber(h[4]), st = h[5], m = h[6]}
end
if #holds == 0 then return '{"ok":true,"v":' .. v .. ',"holds":[]}' end
return '{"ok":true,"v":' .. v .. ',"holds":' .. cjson.encode(holds) .. '}'
