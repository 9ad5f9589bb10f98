package jobrun

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/jobsql"
	"github.com/xacctd/xacctd/pkg/reconcile"
	"github.com/xacctd/xacctd/pkg/schedule"
)

// Gate answers from one readiness evaluation: a pair it does not know is not ready.
func Gate(ready []reconcile.PairReadiness) schedule.Gate {
	byPair := make(map[string]reconcile.PairReadiness, len(ready))
	for _, r := range ready {
		byPair[r.Pair] = r
	}
	return func(pair string) (bool, string) {
		r, ok := byPair[pair]
		if !ok {
			return false, "its readiness is not known yet (no reconcile has observed it)"
		}
		return r.Ready, r.Reason()
	}
}

// ProbeStep is one statement of a probe.
type ProbeStep struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Detail   string   `json:"detail"`
	Link     string   `json:"broken_link,omitempty"` // the link of the access chain a failure points at
	Failure  *Failure `json:"-"`
	Duration int64    `json:"duration_ms"`
}

// ProbeResult is the outcome of probing one pair.
type ProbeResult struct {
	Pair  string      `json:"pair"`
	OK    bool        `json:"ok"`
	Steps []ProbeStep `json:"steps"`
}

// ProbeTimeout bounds each probe statement.
const ProbeTimeout = 2 * time.Minute

// Probe tests a pair's access path for real, as its jobs would use it: per unload pair an
// UNLOAD ('SELECT 1') to <prefix>_xacctd_probe/check/ (overwritten each time, so probes
// leave one small file), per copy pair a read: a COPY of that file back into a temporary
// table when the pair also unloads, else a COPY from an empty location under the prefix —
// S3 answering "prefix does not exist" proves that listing is allowed (reading an object
// is then not proven, and the detail says so).
func (e *Executor) Probe(ctx context.Context, p *config.Pair) ProbeResult {
	res := ProbeResult{Pair: p.Name, OK: true}
	target, ok := e.Targets[p.Name]
	fail := func(name string, f *Failure, took time.Duration) {
		res.OK = false
		res.Steps = append(res.Steps, ProbeStep{Name: name, Detail: f.Error() + hintSuffix(f), Link: brokenLink(f, target),
			Failure: f, Duration: took.Milliseconds()})
	}
	cl := e.Config.Clusters[p.Cluster]
	if !ok || cl == nil {
		fail("connect", &Failure{Class: ClassConfig, Message: "pair has no cluster or target"}, 0)
		return res
	}
	if err := target.Validate(); err != nil {
		fail("connect", &Failure{Class: ClassConfig, Message: err.Error()}, 0)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	began := time.Now()
	sess, err := e.Connector.Connect(ctx, cl)
	if err != nil {
		fail("connect to cluster "+cl.Name, Classify(err), time.Since(began))
		return res
	}
	defer sess.Close(ctx)
	res.Steps = append(res.Steps, ProbeStep{Name: "connect to cluster " + cl.Name, OK: true,
		Detail: "as " + cl.User + " (" + cl.Auth + ")", Duration: time.Since(began).Milliseconds()})

	var written string
	if p.Has("unload") {
		st := jobsql.ProbeUnload(target, "check")
		began = time.Now()
		if _, err := sess.Exec(ctx, st.SQL); err != nil {
			fail("unload to "+st.URL, Classify(err), time.Since(began))
			return res
		}
		written = st.URL
		res.Steps = append(res.Steps, ProbeStep{Name: "unload to " + st.URL, OK: true,
			Detail: "UNLOAD ('SELECT 1') wrote through IAM_ROLE " + strings.Join(target.RoleARNs, ","), Duration: time.Since(began).Milliseconds()})
	}
	if p.Has("copy") {
		began = time.Now()
		if _, err := sess.Exec(ctx, "CREATE TEMP TABLE xacctd_probe (v VARCHAR(16))"); err != nil {
			fail("create a temporary table", Classify(err), time.Since(began))
			return res
		}
		from := written
		if from == "" {
			from = "s3://" + target.Bucket + "/" + target.Prefix + jobsql.ProbeDir + "empty-" + history.NewID(time.Now()) + "/"
		}
		st := jobsql.ProbeCopy(target, "xacctd_probe", from)
		_, err := sess.Exec(ctx, st.SQL)
		f := Classify(err)
		switch {
		case err == nil:
			res.Steps = append(res.Steps, ProbeStep{Name: "copy from " + from, OK: true,
				Detail: "COPY read the probe file back through IAM_ROLE " + strings.Join(target.RoleARNs, ","), Duration: time.Since(began).Milliseconds()})
		case written == "" && f.Class == ClassS3Access && strings.Contains(f.Message, "does not exist"):
			res.Steps = append(res.Steps, ProbeStep{Name: "list " + from, OK: true,
				Detail:   "S3 let the role list the prefix (nothing is there, as expected); reading objects is not proven by a copy-only probe",
				Duration: time.Since(began).Milliseconds()})
		default:
			fail("copy from "+from, f, time.Since(began))
			return res
		}
	}
	return res
}

func hintSuffix(f *Failure) string {
	if f.Hint == "" {
		return ""
	}
	return " — " + f.Hint
}

// brokenLink names the link of the access chain a failure points at, in the words of
// `xacctd check`.
func brokenLink(f *Failure, t jobsql.Target) string {
	msg := f.Message
	chain := len(t.RoleARNs) > 1
	switch {
	case strings.Contains(msg, "Not authorized to get credentials of role"):
		return "association"
	case strings.Contains(msg, "is not authorized to assume IAM Role"):
		if chain && strings.Contains(msg, t.RoleARNs[len(t.RoleARNs)-1]) {
			return "target role trust"
		}
		return "role trust"
	case f.Class == ClassS3Access:
		if chain {
			return "target role policy or bucket policy"
		}
		return "bucket policy statement or role policy"
	case f.Class == ClassAuth:
		return "database login"
	case f.Class == ClassNetwork:
		return "connection"
	case f.Class == ClassPermission:
		return "database privileges"
	}
	return fmt.Sprintf("%s error", f.Class)
}
