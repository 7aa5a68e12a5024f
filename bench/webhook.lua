-- wrk script for the ingest benchmark: POSTs Alertmanager webhook payloads (version 4).
--
-- Every request carries 10 firing alerts of one Alertmanager group (same alertname and
-- service, as Alertmanager would group them). Every alert in the whole run is distinct:
-- its instance label and its 16-hex-digit fingerprint are built from
--   nonce (4 hex, per benchmark invocation) .. phase (1 hex) .. thread (2 hex) .. counter (9 hex)
-- so no fingerprint or label set repeats across requests, threads or wrk runs.
--
-- Arguments after `--` on the wrk command line: <nonce 4 hex> <phase 0-15>.
-- done() prints one line "BENCH_RESULT {json}" with the figures of the run.

local ALERT_NAMES = {
  "HighResponseTime", "HighErrorRate", "KISApiErrors", "KISTokenRefreshFailed",
  "OrderQueueBacklog", "DatabaseConnectionsHigh",
}
local DESCRIPTIONS = {
  HighResponseTime = "p99 latency above 300ms for 5 minutes; expected < 300ms, actual 812ms",
  HighErrorRate = "5xx ratio above 2% for 5 minutes; expected < 2%, actual 6.4%",
  KISApiErrors = "KIS brokerage API calls failing; expected < 1%, actual 12%",
  KISTokenRefreshFailed = "KIS access token refresh failed 3 times in a row",
  OrderQueueBacklog = "order queue backlog above 500 for 10 minutes; expected < 500, actual 2310",
  DatabaseConnectionsHigh = "connection pool above 90% for 5 minutes; expected < 90%, actual 97%",
}
local SERVICES = 8
local ALERTS_PER_REQUEST = 10

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

-- per-thread state (each wrk thread has its own Lua state)
local nonce = "0000"
local phase = 0
local counter = 0
local req_no = 0
ok2xx = 0
non2xx = 0
first_error = ""

function init(args)
  nonce = args[1] or "0000"
  phase = tonumber(args[2] or "0") or 0
  tid = tid or 0
end

local function q(s)
  -- JSON string literal; the values built here only ever need quotes escaped
  return '"' .. string.gsub(s, '"', '\\"') .. '"'
end

local function alert_json(name, service, severity, n, starts_at)
  local fp = string.format("%s%x%02x%09x", nonce, phase % 16, tid % 256, n)
  local instance = string.format("host-%d-%d-%d", phase, tid, n)
  return table.concat({
    '{"status":"firing","labels":{',
    '"alertname":', q(name),
    ',"service":', q(service),
    ',"severity":', q(severity),
    ',"instance":', q(instance),
    ',"job":"trading-api","env":"beta","namespace":"trading"},',
    '"annotations":{',
    '"summary":', q(name .. " on " .. service .. " (" .. instance .. ")"),
    ',"description":', q(DESCRIPTIONS[name] .. " (" .. instance .. ")"),
    ',"runbook_url":"https://runbooks.example.com/', name, '"},',
    '"startsAt":', q(starts_at),
    ',"endsAt":"0001-01-01T00:00:00Z"',
    ',"generatorURL":"http://prometheus:9090/graph?g0.expr=', name, '&g0.tab=1"',
    ',"fingerprint":"', fp, '"}',
  })
end

function request()
  req_no = req_no + 1
  local name = ALERT_NAMES[(req_no + tid) % #ALERT_NAMES + 1]
  local service = "svc-" .. ((req_no * 7 + tid) % SERVICES)
  local severity = (req_no % 3 == 0) and "critical" or "warning"
  local base = os.date("!%Y-%m-%dT%H:%M:%S")
  local alerts = {}
  for i = 1, ALERTS_PER_REQUEST do
    counter = counter + 1
    local starts_at = string.format("%s.%09dZ", base, (counter * 7919) % 1000000000)
    alerts[i] = alert_json(name, service, severity, counter, starts_at)
  end
  local group_key = '{}/{severity=~"critical|warning"}:{alertname="' .. name ..
    '", service="' .. service .. '"}'
  local body = table.concat({
    '{"version":"4","groupKey":', q(group_key),
    ',"truncatedAlerts":0,"status":"firing","receiver":"alert-receiver"',
    ',"groupLabels":{"alertname":', q(name), ',"service":', q(service), '}',
    ',"commonLabels":{"alertname":', q(name), ',"service":', q(service),
    ',"severity":', q(severity), ',"job":"trading-api","env":"beta","namespace":"trading"}',
    ',"commonAnnotations":{}',
    ',"externalURL":"http://alertmanager:9093"',
    ',"alerts":[', table.concat(alerts, ","), ']}',
  })
  return wrk.format("POST", "/webhook", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok2xx = ok2xx + 1
  else
    non2xx = non2xx + 1
    if first_error == "" then
      first_error = tostring(status) .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

local function jstr(s)
  s = string.gsub(s, '\\', '\\\\')
  s = string.gsub(s, '"', '\\"')
  s = string.gsub(s, '[%c]', ' ')
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local ok, bad, err = 0, 0, ""
  for _, t in ipairs(threads) do
    ok = ok + (t:get("ok2xx") or 0)
    bad = bad + (t:get("non2xx") or 0)
    local e = t:get("first_error") or ""
    if err == "" and e ~= "" then
      err = e
    end
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_s":%.3f,"rps":%.2f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"ok_2xx":%d,"non_2xx":%d,"status_errors":%d,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"alerts_per_request":%d,"first_error":%s}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    ok, bad, e.status, e.connect, e.read, e.write, e.timeout,
    ALERTS_PER_REQUEST, jstr(err)))
end
