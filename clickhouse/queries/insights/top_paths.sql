-- Most requested paths (ids normalised), with their error count and mean latency.
SELECT path, count() AS requests, countIf(status >= 400) AS errors, round(avg(duration_ms), 2) AS avg_ms
FROM requests FINAL
WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
GROUP BY path
ORDER BY requests DESC, path
LIMIT 20
