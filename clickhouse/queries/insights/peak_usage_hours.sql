-- Requests by hour of day (UTC), busiest first. Reads the per-minute rollup.
SELECT toHour(minute) AS hour_utc, sum(requests) AS requests
FROM requests_by_session_1m
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
GROUP BY hour_utc
ORDER BY requests DESC, hour_utc
LIMIT 24
