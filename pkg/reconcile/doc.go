// Package reconcile turns the configuration into the AWS settings each pair needs, compares
// them with what AWS has, and applies the difference (design.md §4).
//
// Its pieces arrive with the reconciler issue: desired state (pure), observe (batched AWS
// reads), plan (pure, golden-tested) and apply (dependency-ordered, bounded concurrency).
package reconcile
