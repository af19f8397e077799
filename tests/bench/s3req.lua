-- s3req.lua - wrk script of the s3 phase: cycles through requests written in
-- advance by s3sign.py (signed S3 requests, or with --native the same requests
-- unsigned), so that both APIs are driven by the same client code.
--   wrk -t2 -c64 -d10s -s s3req.lua http://127.0.0.1:PORT -- FILE THREADS
-- FILE holds one request a line: "METHOD PATH", then its headers, separated
-- by tabs; FILE.body is the body of every request (empty for GET). Thread i
-- of THREADS takes the lines i, i + THREADS, ...: the threads' keys are
-- disjoint, and each thread goes round its own keys in order.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_report.lua")

local nthreads = 0
function setup(thread)
   thread:set("id", nthreads)
   nthreads = nthreads + 1
end

local reqs = {}
local body = ""
local n = 0

function init(args)
   local file = args[1] or error("s3req.lua: the requests file is the first argument")
   local threads = tonumber(args[2] or "1")
   local f = assert(io.open(file .. ".body", "rb"))
   body = f:read("*a")
   f:close()
   local len = ""
   if #body > 0 then len = "Content-Length: " .. #body .. "\r\n" end
   local i = 0
   for line in io.lines(file) do
      if i % threads == (id or 0) then
         local parts = {}
         for field in line:gmatch("[^\t]+") do parts[#parts + 1] = field end
         -- the whole request, body included, built once here: request() then only picks one, the same
         -- work for both APIs whatever the size (a concatenation per request cost wrk more for S3's
         -- longer requests)
         reqs[#reqs + 1] = parts[1] .. " HTTP/1.1\r\n" .. table.concat(parts, "\r\n", 2) .. "\r\n" .. len .. "\r\n" .. body
      end
      i = i + 1
   end
   if #reqs == 0 then error("s3req.lua: no request for thread " .. (id or 0) .. " in " .. file) end
end

function request()
   n = n + 1
   return reqs[(n - 1) % #reqs + 1]
end
