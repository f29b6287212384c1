-- wrk script for bench/wrk.py: POSTs the pre-signed Twilio webhooks of a file, one per line as
-- "<X-Twilio-Signature>\t<urlencoded form>", each thread taking its own share, each form once.
-- `me` is a global on purpose: setup's thread:set writes the thread's globals after this chunk has
-- run, so a local of that name would stay 0 in every thread and each form would be sent once per thread.
local forms, counter, stride = {}, 0, 1
local made = 0

function setup(thread)
  thread:set("me", made)
  made = made + 1
end

function init(args)
  for line in io.lines(args[1]) do
    forms[#forms + 1] = line
  end
  stride = tonumber(args[2])
  counter = me
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  local line = forms[(counter % #forms) + 1]
  counter = counter + stride
  local cut = line:find("\t", 1, true)
  wrk.headers["X-Twilio-Signature"] = line:sub(1, cut - 1)
  return wrk.format(nil, wrk.path, nil, line:sub(cut + 1))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d status=%d socket=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
