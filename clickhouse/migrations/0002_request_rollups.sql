-- Per-minute request rollups, fed by materialized views on `requests`.
-- Dashboards and rate-limit queries read these instead of raw rows. Ingest
-- filters redelivered events before inserting, so rollups count each event once.

CREATE TABLE IF NOT EXISTS requests_by_session_1m
(
    minute DateTime('UTC'),
    session_id String,
    requests SimpleAggregateFunction(sum, UInt64),
    errors_4xx SimpleAggregateFunction(sum, UInt64),
    errors_5xx SimpleAggregateFunction(sum, UInt64),
    bytes_in SimpleAggregateFunction(sum, UInt64),
    bytes_out SimpleAggregateFunction(sum, UInt64),
    latency AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (session_id, minute)
TTL minute + INTERVAL 90 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS requests_by_session_1m_mv TO requests_by_session_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    session_id,
    count() AS requests,
    countIf(status >= 400 AND status < 500) AS errors_4xx,
    countIf(status >= 500) AS errors_5xx,
    sum(bytes_in) AS bytes_in,
    sum(bytes_out) AS bytes_out,
    quantilesState(0.5, 0.95, 0.99)(duration_ms) AS latency
FROM requests
GROUP BY minute, session_id;

CREATE TABLE IF NOT EXISTS requests_by_country_1m
(
    minute DateTime('UTC'),
    country LowCardinality(String),
    requests SimpleAggregateFunction(sum, UInt64),
    errors_4xx SimpleAggregateFunction(sum, UInt64),
    errors_5xx SimpleAggregateFunction(sum, UInt64),
    bytes_out SimpleAggregateFunction(sum, UInt64),
    latency AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (country, minute)
TTL minute + INTERVAL 90 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS requests_by_country_1m_mv TO requests_by_country_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    country,
    count() AS requests,
    countIf(status >= 400 AND status < 500) AS errors_4xx,
    countIf(status >= 500) AS errors_5xx,
    sum(bytes_out) AS bytes_out,
    quantilesState(0.5, 0.95, 0.99)(duration_ms) AS latency
FROM requests
GROUP BY minute, country;

CREATE TABLE IF NOT EXISTS requests_by_ip_1m
(
    minute DateTime('UTC'),
    visitor_ip String,
    requests UInt64,
    errors UInt64,
    bytes_out UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (visitor_ip, minute)
TTL minute + INTERVAL 7 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS requests_by_ip_1m_mv TO requests_by_ip_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    visitor_ip,
    count() AS requests,
    countIf(status >= 400) AS errors,
    sum(bytes_out) AS bytes_out
FROM requests
GROUP BY minute, visitor_ip;
