-- Raw event tables, one per event family. Partitioned by day, raw TTL 30 days
-- (the migration runner applies RAW_TTL_DAYS when it differs).
-- ReplacingMergeTree keyed by event_id: a redelivered event collapses into one
-- row on merge; exact counts use FINAL or uniqExact(event_id) (docs/events.md).

CREATE TABLE IF NOT EXISTS sessions
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    type LowCardinality(String),
    relay_id LowCardinality(String),
    session_id String,
    port UInt16 DEFAULT 0,
    requested_subdomain String DEFAULT '',
    client_version LowCardinality(String) DEFAULT '',
    url_kind LowCardinality(String) DEFAULT '',
    api_key_id String DEFAULT '',
    client_ip String DEFAULT '',
    country LowCardinality(String) DEFAULT '',
    reason LowCardinality(String) DEFAULT '',
    duration_ms Float64 DEFAULT 0,
    requests UInt64 DEFAULT 0,
    bytes_in UInt64 DEFAULT 0,
    bytes_out UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (type, session_id, event_id)
TTL toDateTime(ts) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS connections
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    type LowCardinality(String),
    relay_id LowCardinality(String),
    session_id String,
    transport LowCardinality(String) DEFAULT 'relay',
    success UInt8 DEFAULT 1,
    code UInt16 DEFAULT 0,
    reason String DEFAULT '',
    client_ip String DEFAULT '',
    duration_ms Float64 DEFAULT 0
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (type, session_id, event_id)
TTL toDateTime(ts) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS requests
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    relay_id LowCardinality(String),
    session_id String,
    method LowCardinality(String),
    host_kind LowCardinality(String),
    status UInt16,
    duration_ms Float64,
    ttfb_ms Float64,
    bytes_in UInt64,
    bytes_out UInt64,
    path String,
    visitor_ip String,
    country LowCardinality(String),
    user_agent String,
    referrer_host LowCardinality(String),
    server LowCardinality(String),
    powered_by LowCardinality(String),
    framework LowCardinality(String),
    error_code LowCardinality(String),
    -- When ingest inserted the row: ingested_at - ts is the pipeline lag.
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (session_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS websockets
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    relay_id LowCardinality(String),
    session_id String,
    duration_ms Float64,
    messages_in UInt64,
    messages_out UInt64,
    bytes_in UInt64,
    bytes_out UInt64,
    close_code UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (session_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS security
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    type LowCardinality(String),
    relay_id LowCardinality(String),
    session_id String,
    ip String,
    key String DEFAULT '',
    reason String DEFAULT ''
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (type, ip, ts, event_id)
TTL toDateTime(ts) + INTERVAL 30 DAY;
