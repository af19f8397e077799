#!/usr/bin/env python3
"""s3sign.py - sign S3 requests in advance for wrk (tests/bench/s3req.lua).

  s3sign.py --host 127.0.0.1:PORT --method GET|PUT --keys FMT --count N
            --out FILE [--size BYTES] [--access-key AK --secret SK --region R]
            [--native]

wrk's Lua has no HMAC, so the requests of the s3 phase are signed here with
AWS Signature Version 4 (hmac and hashlib of the standard library), for N
distinct keys (FMT % i, e.g. "bench/put/k%06d": bucket/key). Each request is
one line of FILE: "METHOD PATH" then its headers "Name: value", separated by
tabs; s3req.lua adds the line ends and the body. A PUT's body is SIZE bytes
(written to FILE.body), signed as boto3 signs a body over plain HTTP: its hex
SHA-256 in x-amz-content-sha256, not UNSIGNED-PAYLOAD. Signatures carry the
current time in x-amz-date and stay valid for 15 minutes (the allowed clock
skew): sign right before the run.

With --native the same requests are written without any signature (the
native API), so that both APIs are driven by the same client code. With
--check, the first request is sent once and must answer 200 (a request the
server refuses would otherwise be measured as a fast error).
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse


def signing_key(secret, date, region):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def body_of(size):
    """SIZE bytes that are not one repeated byte (as put.lua's)."""
    return bytes((i * 37) % 256 for i in range(256)) * (size // 256) + bytes((i * 37) % 256 for i in range(size % 256))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--host", required=True, help="the Host header, as signed: 127.0.0.1:PORT")
    ap.add_argument("--method", required=True, choices=("GET", "PUT"))
    ap.add_argument("--keys", required=True, help="bucket/key pattern with one %%d, e.g. bench/put/k%%06d")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--size", type=int, default=4096, help="bytes of a PUT's body")
    ap.add_argument("--out", required=True)
    ap.add_argument("--access-key", default="")
    ap.add_argument("--secret", default="")
    ap.add_argument("--secret-file", help="the secret key: the first line of this file")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--native", action="store_true", help="no signature: the native API")
    ap.add_argument("--check", action="store_true", help="send the first request once; exit 1 unless it answers 200")
    args = ap.parse_args()
    if args.count < 1 or args.count > 10000000 or args.size < 0:
        ap.error("--count must be 1 to 10,000,000 and --size not negative")
    secret = args.secret
    if args.secret_file:
        with open(args.secret_file) as f:
            secret = f.readline().rstrip()
    if not args.native and (not args.access_key or not secret):
        ap.error("--access-key and --secret (or --secret-file) are needed to sign; --native for unsigned requests")

    body = body_of(args.size) if args.method == "PUT" else b""
    payload = hashlib.sha256(body).hexdigest()
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], args.region)
    key = None if args.native else signing_key(secret, amz_date[:8], args.region)
    signed = "host;x-amz-content-sha256;x-amz-date"
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        for i in range(args.count):
            path = "/" + urllib.parse.quote(args.keys % i, safe="/-_.~")
            line = ["%s %s" % (args.method, path), "Host: %s" % args.host]
            if key is not None:
                canonical = "\n".join((args.method, path, "", "host:" + args.host, "x-amz-content-sha256:" + payload,
                                       "x-amz-date:" + amz_date, "", signed, payload))
                sts = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()))
                sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
                line += ["x-amz-content-sha256: " + payload, "x-amz-date: " + amz_date,
                         "Authorization: AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" %
                         (args.access_key, scope, signed, sig)]
            if args.method == "PUT":
                line.append("Content-Type: application/octet-stream")
            f.write("\t".join(line) + "\n")
    with open(args.out + ".body", "wb") as f:
        f.write(body)
    os.replace(tmp, args.out)
    if args.check:
        return check(args.out, body)
    return 0


def check(out, body):
    with open(out) as f:
        fields = f.readline().rstrip("\n").split("\t")
    method, path = fields[0].split(" ", 1)
    headers = dict(h.split(": ", 1) for h in fields[1:])
    host, port = headers["Host"].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        c.putheader(k, v)
    if method == "PUT":
        c.putheader("Content-Length", str(len(body)))
    c.endheaders(body if method == "PUT" else None)
    r = c.getresponse()
    text = r.read()
    c.close()
    if r.status != 200:
        print("s3sign.py: %s %s answered %d: %s" % (method, path, r.status, text[:300].decode(errors="replace")), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
