package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/xacctd/xacctd/pkg/policy"
)

// Link is one link of a pair's access chain and whether it holds.
type Link struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// PairReadiness says whether a pair's jobs can run, link by link.
type PairReadiness struct {
	Pair   string `json:"pair"`
	Method string `json:"method"`
	Ready  bool   `json:"ready"`
	Links  []Link `json:"links"`
}

// Reason is the first broken link, in words, for logs and skipped jobs.
func (r PairReadiness) Reason() string {
	for _, l := range r.Links {
		if !l.OK {
			return l.Name + ": " + l.Detail
		}
	}
	return ""
}

var bucketTypes = []string{TypeBucket, TypePublicAccessBlock, TypeOwnership, TypeEncryption}
var roleTypes = []string{TypeRole, TypeTrust, TypeRolePolicy, TypeRoleAttachment, TypeRoleTags}

// Readiness evaluates every configured pair against one observation: a pair is ready when
// nothing it depends on differs from the configuration, nothing blocks it, and its role is
// associated with the cluster and in-sync.
func Readiness(s *Snapshot) []PairReadiness {
	var out []PairReadiness
	for _, name := range slices.Sorted(maps.Keys(s.Desired.Pairs)) {
		ps := s.Desired.Pairs[name]
		r := PairReadiness{Pair: name, Method: ps.Method}
		// In dependency order, so that Reason names the cause rather than a consequence.
		r.Links = append(r.Links, bucketLink(s, ps), roleLink(s, ps, "role", ps.RoleARNs[0]))
		if ps.Method == "role-chaining" {
			r.Links = append(r.Links, roleLink(s, ps, "target role", ps.RoleARNs[1]), denyOnlyStatementLink(s, ps))
		} else {
			r.Links = append(r.Links, statementLink(s, ps))
		}
		r.Links = append(r.Links, associationLink(s, ps))
		r.Ready = true
		for _, l := range r.Links {
			r.Ready = r.Ready && l.OK
		}
		out = append(out, r)
	}
	return out
}

func conflictFor(s *Snapshot, match func(Conflict) bool) string {
	for _, c := range s.Plan.Conflicts {
		if match(c) {
			return c.Reason
		}
	}
	return ""
}

func changesFor(s *Snapshot, match func(Change) bool) []string {
	var out []string
	for _, c := range s.Plan.Changes {
		if c.Action != NoOp && match(c) {
			out = append(out, fmt.Sprintf("%s %s (%s)", c.Action, c.Type, c.Reason))
		}
	}
	return out
}

func notOK(name string, problems []string) Link {
	return Link{Name: name, Detail: strings.Join(problems, "; ") + ": run xacctd apply"}
}

func bucketLink(s *Snapshot, ps *PairState) Link {
	name := "bucket " + ps.Bucket
	if why := conflictFor(s, func(c Conflict) bool { return (c.Type == TypeBucket || c.Type == TypeStatement) && c.ID == ps.Bucket }); why != "" {
		return Link{Name: name, Detail: why}
	}
	if p := changesFor(s, func(c Change) bool { return slices.Contains(bucketTypes, c.Type) && c.ID == ps.Bucket }); len(p) > 0 {
		return notOK(name, p)
	}
	return Link{Name: name, OK: true, Detail: "exists; public access blocked; bucket owner enforced; default encryption on"}
}

func statementLink(s *Snapshot, ps *PairState) Link {
	name := "bucket policy of " + ps.Bucket
	if p := changesFor(s, func(c Change) bool { return c.Type == TypeStatement && c.Pair == ps.Name }); len(p) > 0 {
		return notOK(name, p)
	}
	if why := conflictFor(s, func(c Conflict) bool { return c.Type == TypeRole && slices.Contains(c.Pairs, ps.Name) }); why != "" {
		return Link{Name: name, Detail: "not written while the role is in conflict"}
	}
	return Link{Name: name, OK: true, Detail: fmt.Sprintf("grants %s exactly the pair's actions on %s", ps.RoleARNs[0], ps.Prefix)}
}

func denyOnlyStatementLink(s *Snapshot, ps *PairState) Link {
	name := "bucket policy of " + ps.Bucket
	if p := changesFor(s, func(c Change) bool {
		return c.Type == TypeStatement && c.ID == ps.Bucket+"/"+policy.DenyInsecureTransportSid
	}); len(p) > 0 {
		return notOK(name, p)
	}
	return Link{Name: name, OK: true, Detail: "no cross-account grant needed (role chaining); xacctd's statements as configured"}
}

func roleLink(s *Snapshot, ps *PairState, label, arn string) Link {
	roleName := arn[strings.LastIndex(arn, "/")+1:]
	name := label + " " + roleName
	if why := conflictFor(s, func(c Conflict) bool {
		return (c.Type == TypeRole && c.ID == roleName && slices.Contains(c.Pairs, ps.Name)) || (c.Type == TypeRole && c.ID == "*")
	}); why != "" {
		return Link{Name: name, Detail: why}
	}
	if p := changesFor(s, func(c Change) bool {
		id, _, _ := strings.Cut(c.ID, "/")
		return slices.Contains(roleTypes, c.Type) && c.Pair == ps.Name && strings.EqualFold(id, roleName)
	}); len(p) > 0 {
		return notOK(name, p)
	}
	detail := "trust and permissions exactly as configured"
	for _, r := range s.Desired.Roles {
		if r.ARN != arn {
			continue
		}
		if len(r.Trust.Statement) > 0 && r.Trust.Statement[0].Principal["Service"] != nil {
			users := r.Trust.Statement[0].Condition["StringEquals"]["sts:ExternalId"]
			if len(users) == 0 {
				detail = "trusted by Redshift for every user of the cluster; permissions exact"
			} else {
				detail = fmt.Sprintf("trusted by Redshift only for %s; permissions exact", dbUsers(users))
			}
		} else {
			detail = "trusts only the first role of the chain; permissions exact"
		}
	}
	return Link{Name: name, OK: true, Detail: detail}
}

func dbUsers(arns []string) string {
	names := make([]string, len(arns))
	for i, a := range arns {
		names[i] = a[strings.LastIndex(a, "/")+1:]
	}
	return strings.Join(names, ", ")
}

func associationLink(s *Snapshot, ps *PairState) Link {
	name := "association with cluster " + ps.Cluster
	for _, a := range s.Desired.Associations {
		if a.Pair != ps.Name {
			continue
		}
		if why := conflictFor(s, func(c Conflict) bool {
			return c.Type == TypeAssociation && (c.ID == a.Cluster || c.ID == a.Region) && (len(c.Pairs) == 0 || slices.Contains(c.Pairs, ps.Name))
		}); why != "" {
			return Link{Name: name, Detail: why}
		}
		oc := s.Observed.Clusters[ClusterKey(a.AccountID, a.Region, a.Cluster)]
		if oc == nil {
			return Link{Name: name, Detail: "cluster not found"}
		}
		switch st := oc.Roles[a.RoleARN]; st {
		case "in-sync":
			return Link{Name: name, OK: true, Detail: "in-sync"}
		case "":
			return Link{Name: name, Detail: "the role is not associated: run xacctd apply"}
		case "removing":
			return Link{Name: name, Detail: "removing (someone removed the association; xacctd adds it back once Redshift has finished)"}
		default:
			return Link{Name: name, Detail: fmt.Sprintf("%s (Redshift is still applying the association; usable once in-sync)", st)}
		}
	}
	return Link{Name: name, Detail: "no association planned"}
}
