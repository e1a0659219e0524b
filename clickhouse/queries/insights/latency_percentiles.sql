-- Request duration percentiles (ms), merged from the per-minute quantile states.
SELECT
    round(q[1], 2) AS p50_ms,
    round(q[2], 2) AS p95_ms,
    round(q[3], 2) AS p99_ms
FROM
(
    SELECT quantilesMerge(0.5, 0.95, 0.99)(latency) AS q
    FROM requests_by_session_1m
    WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
)
