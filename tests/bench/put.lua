-- put.lua - wrk script for the PUT runs: every request is a PUT of SIZE bytes
-- to PREFIXt<thread>-<n>, n cycling over KEYS keys per wrk thread, so the
-- first KEYS x threads PUTs create objects and the following ones overwrite
-- them. The same script and arguments drive nginx (WebDAV) and storaged.
--   wrk -t2 -c64 -d10s -s put.lua http://127.0.0.1:PORT -- KEYS SIZE PREFIX
--   (defaults: 50000 4096 /bench/put/)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_report.lua")

local nthreads = 0
function setup(thread)
   thread:set("id", nthreads)
   nthreads = nthreads + 1
end

local per_thread, prefix, body
local n = 0

function init(args)
   local keys = tonumber(args[1] or "50000")
   local size = tonumber(args[2] or "4096")
   prefix = args[3] or "/bench/put/"
   -- a body of SIZE bytes that is not one repeated byte
   local chunk = {}
   for i = 0, 255 do chunk[#chunk + 1] = string.char((i * 37 + (id or 0)) % 256) end
   local s = table.concat(chunk)
   body = string.rep(s, math.ceil(size / #s)):sub(1, size)
   per_thread = math.max(1, keys)
end

function request()
   local path = string.format("%st%d-%d", prefix, id or 0, n % per_thread)
   n = n + 1
   return wrk.format("PUT", path, {["Content-Type"] = "application/octet-stream"}, body)
end
