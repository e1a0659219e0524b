-- Client IPs that created more than {max_per_hour} sessions in any one hour.
SELECT client_ip, toStartOfHour(ts) AS hour, uniqExact(session_id) AS sessions
FROM sessions FINAL
WHERE type = 'session.created' AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
GROUP BY client_ip, hour
HAVING sessions > {max_per_hour:UInt32}
ORDER BY sessions DESC, client_ip
