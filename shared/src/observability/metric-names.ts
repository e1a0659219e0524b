/**
 * Prometheus metric names, shared by the services that register them and the
 * dashboards that query them, so the two cannot drift apart.
 */
export const RelayMetrics = {
  activeSessions: 'wingman_relay_active_sessions',
  tunnelConnections: 'wingman_relay_tunnel_connections',
  requestsTotal: 'wingman_relay_requests_total',
  requestDuration: 'wingman_relay_request_duration_seconds',
  bytesIn: 'wingman_relay_bytes_in_total',
  bytesOut: 'wingman_relay_bytes_out_total',
  websocketStreams: 'wingman_relay_websocket_streams',
  errorsTotal: 'wingman_relay_errors_total',
  inflightStreams: 'wingman_relay_inflight_streams',
  draining: 'wingman_relay_draining',
} as const;
