// Package reconcile turns the configuration into the AWS settings each pair needs, compares
// them with what AWS has, and applies the difference (design.md §4).
//
// Desire (pure) derives the desired state; Observe reads AWS with batched calls; MakePlan
// (pure) compares them; Apply carries the plan out in dependency order. Every run reads
// actual state again, so reconciling is level-based and idempotent. xacctd changes only what
// it owns: statements whose Sid starts with Xacctd, roles tagged managed-by=xacctd, and the
// associations of those roles.
package reconcile

import (
	"context"

	"github.com/xacctd/xacctd/pkg/config"
)

// Reconciler ties desired state, observation, planning and applying together for one
// configuration.
type Reconciler struct {
	Config  *config.Config
	Clients Clients
	Options ApplyOptions
}

// Snapshot is one observation and the plan it gives.
type Snapshot struct {
	Desired  *Desired
	Observed *Observed
	Plan     *Plan
}

// Plan observes AWS and compares it with the configuration; it changes nothing.
func (r *Reconciler) Plan(ctx context.Context) *Snapshot {
	opts := r.Options
	opts.defaults()
	d := Desire(r.Config)
	o := Observe(ctx, r.Config, d, r.Clients, opts.Concurrency)
	return &Snapshot{Desired: d, Observed: o, Plan: MakePlan(d, o)}
}

// ApplyResult is what an apply did, and what a fresh observation found afterwards.
type ApplyResult struct {
	Before *Snapshot
	Result *Result
	After  *Snapshot
}

// InSync reports whether AWS matched the configuration after the apply.
func (a *ApplyResult) InSync() bool {
	return !a.Result.Failed() && a.After.Plan.Empty() && len(a.After.Plan.Conflicts) == 0
}

// Apply plans, carries the plan out, and observes again to verify.
func (r *Reconciler) Apply(ctx context.Context) *ApplyResult {
	before := r.Plan(ctx)
	if before.Plan.Empty() {
		return &ApplyResult{Before: before, Result: &Result{}, After: before}
	}
	res := Apply(ctx, before.Desired, before.Observed, before.Plan, r.Clients, r.Options)
	return &ApplyResult{Before: before, Result: res, After: r.Plan(ctx)}
}
