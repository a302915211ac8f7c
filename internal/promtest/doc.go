// Package promtest proves the example Grafana dashboard
// (examples/grafana) and Prometheus rules (examples/prometheus) against a
// real Prometheus scraping a real patchd: every panel's query returns data,
// every alert has a promtool unit test and the expected ones fire. It holds
// only tests.
package promtest
