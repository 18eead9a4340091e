-- wrk script: GET over the 10,000 keys meta_put.lua wrote; any non-200 is
-- counted by wrk as a non-2xx response.
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/metadata?key=mooncake%2Fram%2Fbench-" .. (n % 10000))
end
