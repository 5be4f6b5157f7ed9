-- wrk script for the task API benchmark.
--   wrk -t T -c C -d 5s --latency -s bench/wrk/tasks.lua http://127.0.0.1:8000 -- ROUTE DATAFILE THREADS
-- DATAFILE: one "user_id token task_id" per line. Threads take interleaved rows (thread k
-- takes rows k, k+T, k+2T, ...), so no two requests share a task id until the file wraps
-- (this matters for delete). ROUTE: list, get, create, update, complete, delete, filter.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local route
local rows = {}
local idx = 0
local stride = 1

function init(args)
  route = args[1]
  stride = tonumber(args[3]) or 1
  idx = tid or 0
  local f = assert(io.open(args[2], "r"))
  for line in f:lines() do
    local user, token, id = line:match("^(%S+) (%S+) (%S+)$")
    if user then
      rows[#rows + 1] = { user, "Bearer " .. token, id }
    end
  end
  f:close()
end

local JSON = "application/json"

function request()
  local row = rows[(idx % #rows) + 1]
  idx = idx + stride
  local base = "/api/" .. row[1] .. "/tasks"
  local headers = { ["Authorization"] = row[2] }
  if route == "list" then
    return wrk.format("GET", base .. "?limit=20", headers)
  elseif route == "filter" then  -- keep in step with FILTERED_LIST in bench/load.py
    return wrk.format("GET", base .. "?limit=20&sort=due&priority=high&priority=medium&priority=none&tag=home&overdue=false", headers)
  elseif route == "get" then
    return wrk.format("GET", base .. "/" .. row[3], headers)
  elseif route == "create" then
    headers["Content-Type"] = JSON
    return wrk.format("POST", base, headers, '{"title":"bench task","description":"made by wrk"}')
  elseif route == "update" then
    headers["Content-Type"] = JSON
    return wrk.format("PUT", base .. "/" .. row[3], headers, '{"title":"bench task, updated"}')
  elseif route == "complete" then
    headers["Content-Type"] = JSON
    return wrk.format("PATCH", base .. "/" .. row[3] .. "/complete", headers, '{"completed":true}')
  elseif route == "delete" then
    return wrk.format("DELETE", base .. "/" .. row[3], headers)
  end
  error("unknown route " .. tostring(route))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors_status":%d,"errors_socket":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
