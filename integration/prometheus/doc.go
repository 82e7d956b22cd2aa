// Package prometheus runs Prometheus's own Consul service discovery (the
// discovery/consul code the Prometheus server runs) against a real
// registry server. A module of its own: Prometheus's dependencies stay out
// of the product's module.
package prometheus
