-- wrk script: POST a new ConfigMap per request (names unique per run through the prefix
-- argument), and print a JSON summary at the end for bench/api.py.
counter = 0
prefix = "x"
namespace = "default"

init = function(args)
  prefix = args[1] or prefix
  namespace = args[2] or namespace
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-' .. prefix .. '-' .. counter ..
    '","labels":{"bench":"api"}},"data":{"key":"valuevaluevaluevaluevaluevaluevaluevalue"}}'
  return wrk.format(nil, "/api/v1/namespaces/" .. namespace .. "/configmaps", nil, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
