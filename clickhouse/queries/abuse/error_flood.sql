-- Sessions with at least {min_errors} errors and an error share above {max_ratio} in any one minute.
SELECT session_id, minute, sum(requests) AS requests, sum(errors_4xx) + sum(errors_5xx) AS errors, round(errors / requests, 4) AS error_ratio
FROM requests_by_session_1m
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
GROUP BY session_id, minute
HAVING errors >= {min_errors:UInt32} AND error_ratio > {max_ratio:Float64}
ORDER BY errors DESC, session_id
