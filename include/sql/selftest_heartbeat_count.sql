-- Rows of the self-test heartbeat for one run (expected: exactly 1).
SELECT COUNT(*) AS n
FROM nightshift_ops.selftest_heartbeat
WHERE run_id = @run_id
