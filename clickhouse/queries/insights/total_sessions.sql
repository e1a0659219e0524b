-- Sessions created in [from, to).
SELECT uniqExact(session_id) AS total_sessions
FROM sessions FINAL
WHERE type = 'session.created' AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
