-- Sessions (and their API key) that moved more than {max_bytes} in any one hour.
SELECT b.session_id, k.api_key_id, b.hour, b.bytes
FROM
(
    SELECT session_id, toStartOfHour(minute) AS hour, sum(bytes_in) + sum(bytes_out) AS bytes
    FROM requests_by_session_1m
    WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
    GROUP BY session_id, hour
    HAVING bytes > {max_bytes:UInt64}
) AS b
LEFT JOIN
(
    SELECT session_id, any(api_key_id) AS api_key_id FROM sessions WHERE type = 'session.created' GROUP BY session_id
) AS k USING (session_id)
ORDER BY b.bytes DESC, b.session_id
