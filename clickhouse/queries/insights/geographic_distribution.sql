-- Requests by visitor country (ISO code, '' when unknown). Reads the per-minute rollup.
SELECT country, sum(requests) AS requests, sum(bytes_out) AS bytes_out
FROM requests_by_country_1m
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
GROUP BY country
ORDER BY requests DESC, country
