// Package schedule decides when jobs run: cron entries in each job's time zone with ISC
// cron's DST semantics, overlap policy, per-cluster concurrency, catch-up and gating on pair
// readiness (design.md §5). It arrives with the jobs issue.
package schedule
