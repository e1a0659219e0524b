-- Bytes in and out per session, largest first. Reads the per-minute rollup.
SELECT session_id, sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out, bytes_in + bytes_out AS bytes_total
FROM requests_by_session_1m
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
GROUP BY session_id
ORDER BY bytes_total DESC, session_id
LIMIT 20
