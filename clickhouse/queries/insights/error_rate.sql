-- Share of requests answered with 4xx or 5xx. Reads the per-minute rollup.
SELECT
    sum(requests) AS requests,
    sum(errors_4xx) AS errors_4xx,
    sum(errors_5xx) AS errors_5xx,
    if(requests = 0, 0, round((errors_4xx + errors_5xx) / requests, 4)) AS error_rate
FROM requests_by_session_1m
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
