-- wrk script: POST a small (~200 byte) JSON document with Content-Type application/json.
-- Used by record_throughput.py and record_memory.py:  wrk -s bench/post.lua http://127.0.0.1:PORT/
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"event":"order.created","order_id":"ord_000123","customer":{"id":"cus_42","email":"bench@example.test"},"items":[{"sku":"SKU-123","qty":2,"price_cents":1999}],"currency":"EUR","note":"repost bench payload"}'
