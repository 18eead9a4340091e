-- wrk script: PUT 2 KiB values over a key space of 10,000 keys.
local value = string.rep("v", 2048)
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/metadata?key=mooncake%2Fram%2Fbench-" .. (n % 10000), nil, value)
end
