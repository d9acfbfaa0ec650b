-- wrk script for part (g) of scripts/bench.sh: GET /verify-token with one
-- of the seeded tokens per request, from that token's own address.
--
--   wrk ... -s scripts/bench-verify-tokens.lua URL -- PREFIX COUNT [INDEX]
--
-- Token i is the UUIDv4 PREFIX followed by i in 12 hex digits, its address
-- 10.(i >> 16).((i >> 8) & 255).(i & 255) (X-Real-IP, trusted from
-- loopback), as scripts/bench-store-probe.py seeds them. Without INDEX each
-- request draws i uniformly from 0 .. COUNT - 1; with INDEX every request
-- presents token INDEX, which the server then answers from its cache. Both
-- kinds build every request the same way, so the two figures differ only by
-- what the server does.
--
-- Prints one JSON line at the end: requests, duration, and every kind of
-- failure wrk counts (non2xx: HTTP answers from 400 up).

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("thread_number", #threads)
end

local prefix, count, index

function init(args)
    prefix = args[1]
    count = tonumber(args[2])
    index = tonumber(args[3])
    -- Each thread its own sequence: the same one in every thread would
    -- present the same tokens in step.
    math.randomseed(os.time() * 1000 + thread_number)
end

function request()
    local i = index or math.random(0, count - 1)
    return wrk.format("GET", "/verify-token", {
        ["Authorization"] = "Bearer " .. prefix .. string.format("%012x", i),
        ["X-Real-IP"] = string.format("10.%d.%d.%d", math.floor(i / 65536), math.floor(i / 256) % 256, i % 256),
    })
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
            '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
        summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
