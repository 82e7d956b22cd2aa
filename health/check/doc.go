// Package check runs the server-side health checks of persistent instances:
// HTTP, TCP and gRPC probes, flap damping, and one loop per instance.
//
// This package does not decide which instances a server checks. The caller
// (the server) passes Runner.Sync only the instances it owns, chosen by
// rendezvous hashing over the live servers, and calls Sync again whenever
// the catalog or the membership changes; every instance is checked by
// exactly one server in the steady state.
//
// Probe results, damper counters and timings are kept in memory only, never
// in Raft: the log would otherwise grow by one entry per probe. The only
// thing that reaches Raft is a change of state (healthy ↔ unhealthy), which
// the Runner reports through RunnerConfig.OnChange and the caller writes. A
// server that takes over a check starts from the catalog's state with fresh
// counters.
package check
