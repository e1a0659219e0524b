-- Share of peer-to-peer connection attempts that succeeded (NULL when there were none).
SELECT
    countIf(success = 1) AS successes,
    count() AS attempts,
    if(attempts = 0, NULL, round(successes / attempts, 4)) AS p2p_success_rate
FROM connections FINAL
WHERE type = 'connection.attempt' AND transport = 'p2p' AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
