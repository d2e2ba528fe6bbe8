-- wrk script of scripts/bench-http: the request comes from the environment, every answer is
-- counted by status, and `done` prints one summary line that the bash script reads.
--
--   BENCH_METHOD  GET (default) or POST, ...
--   BENCH_BODY    a JSON body (sent with Content-Type: application/json), or unset
--   BENCH_TOKEN   a bearer token, or unset
--
-- Every scenario, the ceiling included, runs this same script, so wrk's own cost per request
-- (the `response` callback) is the same in all of them.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
end
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end

-- Per-thread counters (each wrk thread has its own Lua state; `done` adds them up).
ok = 0     -- 2xx other than 204
empty = 0  -- 204: for claim-next, "nothing ready", which is not a claim
other = 0  -- anything that is not 2xx
codes = {} -- those, by status

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function response(status, headers, body)
   if status == 204 then
      empty = empty + 1
   elseif status >= 200 and status < 300 then
      ok = ok + 1
   else
      other = other + 1
      codes[status] = (codes[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local n_ok, n_empty, n_other = 0, 0, 0
   local by_status = {}
   for _, thread in ipairs(threads) do
      n_ok = n_ok + thread:get("ok")
      n_empty = n_empty + thread:get("empty")
      n_other = n_other + thread:get("other")
      for status, n in pairs(thread:get("codes")) do
         by_status[status] = (by_status[status] or 0) + n
      end
   end
   local statuses = {}
   for status, n in pairs(by_status) do
      table.insert(statuses, string.format("%dx%d", status, n))
   end
   table.sort(statuses)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%.0f duration_us=%.0f ok=%.0f empty=%.0f other=%.0f " ..
      "p50_us=%.0f p99_us=%.0f max_us=%.0f socket_errors=%.0f non2xx=%s\n",
      summary.requests, summary.duration, n_ok, n_empty, n_other,
      latency:percentile(50), latency:percentile(99), latency.max,
      e.connect + e.read + e.write + e.timeout,
      #statuses > 0 and table.concat(statuses, ",") or "none"))
end
