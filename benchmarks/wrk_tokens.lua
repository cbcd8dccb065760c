-- Each request posts the same sealed body to /s/<token>, every token used once across threads.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
  local file = io.open(os.getenv("BENCH_BODY"), "rb")
  body = file:read("*a")
  file:close()
  stride = tonumber(os.getenv("BENCH_THREADS"))
  index = id + tonumber(os.getenv("BENCH_OFFSET") or "0")
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

function request()
  index = index + stride
  return wrk.format("POST", "/s/" .. tokens[(index % #tokens) + 1], headers, body)
end
