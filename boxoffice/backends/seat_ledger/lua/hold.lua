-- Hold chosen seats, a general-admission quantity, or the best available seats of a tier.
-- ARGV: hold id, user, now ms, ttl ms, user limit (-1: none), channel ('' public), meta,
--       mode ('seats' | 'tier'), allow split ('1'/'0'), tier, quantity, seat ids...
-- All or nothing: on any error nothing changes (except holds that were due to expire).
local id, user = ARGV[1], ARGV[2]
local now, ttl, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local channel, meta, mode, allow_split = ARGV[6], ARGV[7], ARGV[8], ARGV[9] == '1'
local tier_arg, qty = ARGV[10], tonumber(ARGV[11])
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
expire_due(now)
if redis.call('EXISTS', P .. 'hold:' .. id) == 1 then return fail('EXISTS') end

local function best_available(tier, n, split)
  local rows = cjson.decode(redis.call('HGET', P .. 'rows', tier) or '[]')
  local best_score, best = nil, nil
  local singles = {}
  for _, row in ipairs(rows) do
    local ids = row.s
    local states = redis.call('HMGET', P .. 'seats', unpack(ids))
    local owners = redis.call('HMGET', P .. 'seattier', unpack(ids))
    local run_start = 1
    for i = 1, #ids do
      if states[i] ~= 'A' or owners[i] ~= tier then
        run_start = i + 1
      else
        local dx1, dy1 = row.x[i] - row.c[1], row.y - row.c[2]
        singles[#singles + 1] = {dx1 * dx1 + dy1 * dy1, #singles + 1, ids[i]}
        if i - run_start + 1 >= n then
          local start = i - n + 1
          local sx = 0
          for j = start, i do sx = sx + row.x[j] end
          local dx, dy = sx / n - row.c[1], row.y - row.c[2]
          local score = dx * dx + dy * dy
          if best_score == nil or score < best_score then
            best_score = score
            best = {}
            for j = start, i do best[#best + 1] = ids[j] end
          end
        end
      end
    end
  end
  if best then return best end
  if not split or #singles < n then return nil end
  table.sort(singles, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local chosen = {}
  for i = 1, n do chosen[i] = singles[i][3] end
  return chosen
end

local seats, need = {}, {}
if mode == 'seats' then
  local seen, unknown, taken = {}, {}, {}
  for i = 12, #ARGV do
    local s = ARGV[i]
    if seen[s] then return fail('DUPLICATE_SEAT') end
    seen[s] = true
    local st = redis.call('HGET', P .. 'seats', s)
    if not st then
      unknown[#unknown + 1] = s
    elseif st ~= 'A' then
      taken[#taken + 1] = s
    else
      local t = redis.call('HGET', P .. 'seattier', s)
      seats[#seats + 1] = {s, t}
      need[t] = (need[t] or 0) + 1
    end
  end
  if #unknown > 0 then return fail('UNKNOWN_SEAT', {seats = unknown}) end
  if #taken > 0 then return fail('SEAT_UNAVAILABLE', {seats = taken}) end
else
  local kind = redis.call('HGET', P .. 'tiers', tier_arg)
  if not kind then return fail('UNKNOWN_TIER') end
  if not qty or qty <= 0 then return fail('BAD_QUANTITY') end
  if kind == 'S' then
    local u = usable(tier_arg, channel)
    if u < qty then return fail('SOLD_OUT', {available = u}) end
    local chosen = best_available(tier_arg, qty, allow_split)
    if not chosen then return fail('NO_ADJACENT_SEATS') end
    for _, s in ipairs(chosen) do seats[#seats + 1] = {s, tier_arg} end
  end
  need[tier_arg] = qty
end

local total = 0
for _, n in pairs(need) do total = total + n end
if limit >= 0 and num('users', user) + total > limit then return fail('USER_LIMIT', {limit = limit}) end
local from_quota = {}
for t, n in pairs(need) do
  local u = usable(t, channel)
  if u < n then return fail('SOLD_OUT', {available = u}) end
  if channel ~= '' then
    local q = num('quota', t .. '\t' .. channel)
    if q > 0 then from_quota[t] = math.min(q, n) end
  end
end
create_hold(id, user, seats, need, from_quota, channel, now + ttl, meta)
return hold_reply(id, publish(false), now)
