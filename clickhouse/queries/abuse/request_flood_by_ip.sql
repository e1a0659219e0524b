-- Visitor IPs that sent more than {max_per_minute} requests in any one minute.
SELECT visitor_ip, minute, sum(requests) AS minute_requests
FROM requests_by_ip_1m
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
GROUP BY visitor_ip, minute
HAVING minute_requests > {max_per_minute:UInt32}
ORDER BY minute_requests DESC, visitor_ip
