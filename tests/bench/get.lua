-- get.lua - wrk script for the GET runs: the static request wrk builds from
-- the URL (the same 4 KiB object again and again, keep-alive), plus the JSON
-- summary of wrk_report.lua.
--   wrk -t2 -c64 -d10s -s get.lua http://127.0.0.1:PORT/bench/get/4k
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_report.lua")
