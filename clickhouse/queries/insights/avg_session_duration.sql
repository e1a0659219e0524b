-- Average and median duration of sessions that ended in [from, to).
SELECT
    count() AS sessions_closed,
    round(avg(duration_ms), 1) AS avg_duration_ms,
    round(median(duration_ms), 1) AS median_duration_ms
FROM sessions FINAL
WHERE type = 'session.closed' AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
