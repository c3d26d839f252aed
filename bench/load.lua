-- wrk script for every load of the benchmark.
--   wrk ... -s bench/load.lua URL -- send USERS_FILE RUN [keyed]
--     POST /send_message as the users of USERS_FILE ("id token" lines), each to another
--     of them, or to the receiver a line names ("id token receiver_id"); contents are
--     unique per RUN label. "keyed": each send has an Idempotency-Key of its own, as the
--     client library's. With BENCH_DELAY_MS set, each connection pauses that long
--     between requests (a lighter load).
--   wrk ... -s bench/load.lua URL -- get PATH TOKEN
--     GET PATH with a bearer token.
-- done() prints one JSON line: requests, duration, errors and latency percentiles (us).

local mode, users, run, keyed, path, token
local counter = 0
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  mode = args[1]
  if mode == "send" then
    users = {}
    for line in io.lines(args[2]) do
      local id, user_token, to = line:match("^(%d+) (%S+) ?(%d*)$")
      users[#users + 1] = { id = id, auth = "Bearer " .. user_token, to = to }
    end
    run = args[3]
    keyed = args[4] == "keyed"
    counter = thread_index * 7919
  else
    path, token = args[2], args[3]
  end
end

function request()
  counter = counter + 1
  if mode == "get" then
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
  end
  local sender = users[counter % #users + 1]
  local receiver_id = sender.to
  if receiver_id == "" then
    local receiver = users[(counter * 31 + 7) % #users + 1]
    if receiver == sender then
      receiver = users[(counter * 31 + 8) % #users + 1]
    end
    receiver_id = receiver.id
  end
  local label = string.format("%s-%d-%d", run, thread_index, counter)
  local body = string.format(
    '{"sender_id": %s, "receiver_id": %s, "content": "benchmark message %s"}',
    sender.id, receiver_id, label
  )
  local headers = { ["Authorization"] = sender.auth, ["Content-Type"] = "application/json" }
  if keyed then
    headers["Idempotency-Key"] = "bench-" .. label
  end
  return wrk.format("POST", "/send_message", headers, body)
end

if os.getenv("BENCH_DELAY_MS") then
  local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
  function delay()
    return pause
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max
  ))
end
