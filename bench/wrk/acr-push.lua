-- wrk script for the acr-webhook benchmark: `POST /acr` ACR push events, each with its own
-- event id (so every request is a new document, as in real traffic), authorized with
-- `Authorization: Bearer $BENCH_KEY`. The body is tests/fixtures/acr/push.json with the id
-- replaced by "$BENCH_PREFIX-<thread>-<n>".
--
-- At the end it prints one line the bench driver reads:
--   WRK_RESULT {"requests":..,"duration_us":..,"p50_us":..,"p99_us":..,"max_us":..,...}

local key = os.getenv("BENCH_KEY") or "bench-key"
local prefix = os.getenv("BENCH_PREFIX") or ("wrk-" .. tostring(os.time()))
local path = os.getenv("BENCH_PATH") or "/acr"

local template = '{"id":"%s","timestamp":"2023-11-17T16:52:01.343145347Z","action":"push",'
  .. '"target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
  .. '"size":524,"digest":"sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d",'
  .. '"length":524,"repository":"hello-world","tag":"v1"},'
  .. '"request":{"id":"3cbb6949-7549-4fa1-86cd-a6d5451dffc7","host":"myregistry.azurecr.io",'
  .. '"method":"PUT","useragent":"docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4 '
  .. 'kernel/4.10.0-27-generic os/linux arch/amd64 UpstreamClient(Docker-Client/17.09.0-ce '
  .. '\\\\(linux\\\\))"}}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local n = 0
local headers = {
  ["Authorization"] = "Bearer " .. key,
  ["Content-Type"] = "application/json",
}

function request()
  n = n + 1
  local body = string.format(template, prefix .. "-" .. tostring(tid) .. "-" .. tostring(n))
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f,"errors_status":%d,"errors_connect":%d,"errors_read":%d,'
      .. '"errors_write":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
