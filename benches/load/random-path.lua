-- wrk script: each request GETs a path built from a random line of ids.txt.
-- PATH_TEMPLATE (env) holds {id}, e.g. /fhir/Patient/{id} or /fhir/CarePlan?patient={id}
local ids = {}
for line in io.lines(os.getenv("IDS_FILE") or "ids.txt") do
  ids[#ids + 1] = line
end
local template = os.getenv("PATH_TEMPLATE") or "/fhir/Patient/{id}"
math.randomseed(os.time())

request = function()
  local id = ids[math.random(#ids)]
  local path = template:gsub("{id}", id)
  return wrk.format("GET", path)
end

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f, errors %d, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests / (summary.duration / 1e6),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
