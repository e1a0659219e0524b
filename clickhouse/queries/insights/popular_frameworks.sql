-- Frameworks detected from response headers (server, x-powered-by), by sessions using them.
SELECT framework, uniqExact(session_id) AS sessions, count() AS requests
FROM requests FINAL
WHERE framework != '' AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
GROUP BY framework
ORDER BY sessions DESC, requests DESC, framework
LIMIT 10
