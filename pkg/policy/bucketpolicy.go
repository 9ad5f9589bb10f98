package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// OwnedSidPrefix marks the bucket policy statements xacctd owns. Every other statement is
// foreign: kept exactly as written, never changed or removed.
const OwnedSidPrefix = "Xacctd"

// MaxBucketPolicyBytes is S3's limit for a bucket policy document.
const MaxBucketPolicyBytes = 20 * 1024

// Parts is a bucket policy split into foreign statements (raw, in their order) and owned
// statements (by Sid).
type Parts struct {
	Version string
	ID      json.RawMessage // kept as written, nil when absent
	Foreign []json.RawMessage
	Owned   map[string]json.RawMessage
}

// IsOwnedSid reports whether a statement Sid marks a statement xacctd owns.
func IsOwnedSid(sid string) bool { return strings.HasPrefix(sid, OwnedSidPrefix) }

// Split separates a bucket policy into foreign and owned statements. An empty document
// (no policy) gives empty Parts.
func Split(doc json.RawMessage) (*Parts, error) {
	p := &Parts{Owned: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(doc)) == 0 {
		return p, nil
	}
	var top struct {
		Version   string          `json:"Version"`
		ID        json.RawMessage `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("parse bucket policy: %w", err)
	}
	p.Version, p.ID = top.Version, top.ID
	var stmts []json.RawMessage
	st := bytes.TrimSpace(top.Statement)
	switch {
	case len(st) == 0:
	case st[0] == '[':
		if err := json.Unmarshal(st, &stmts); err != nil {
			return nil, fmt.Errorf("parse bucket policy statements: %w", err)
		}
	default:
		stmts = []json.RawMessage{st}
	}
	for _, s := range stmts {
		var head struct {
			Sid string `json:"Sid"`
		}
		if err := json.Unmarshal(s, &head); err != nil {
			return nil, fmt.Errorf("parse bucket policy statement: %w", err)
		}
		if IsOwnedSid(head.Sid) {
			p.Owned[head.Sid] = s
		} else {
			p.Foreign = append(p.Foreign, s)
		}
	}
	return p, nil
}

// Merge builds the bucket policy to write: the foreign statements of p, as written and in
// their order, then the owned statements, sorted by Sid. It returns nil when there is no
// statement left (the caller deletes the policy instead of writing an empty one).
func Merge(p *Parts, owned []Statement) (json.RawMessage, error) {
	raw := make(map[string]json.RawMessage, len(owned))
	for _, s := range owned {
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		if _, dup := raw[s.Sid]; dup {
			return nil, fmt.Errorf("statement Sid %q is given twice", s.Sid)
		}
		raw[s.Sid] = b
	}
	return MergeRaw(p, raw)
}

// MergeRaw is Merge for owned statements already in JSON, by Sid.
func MergeRaw(p *Parts, owned map[string]json.RawMessage) (json.RawMessage, error) {
	sids := make([]string, 0, len(owned))
	for sid := range owned {
		if !IsOwnedSid(sid) {
			return nil, fmt.Errorf("statement %q is not marked as owned (Sid must start with %s)", sid, OwnedSidPrefix)
		}
		sids = append(sids, sid)
	}
	sort.Strings(sids)
	all := append([]json.RawMessage(nil), p.Foreign...)
	for _, sid := range sids {
		all = append(all, owned[sid])
	}
	if len(all) == 0 {
		return nil, nil
	}
	version := p.Version
	if version == "" {
		version = Version
	}
	var b bytes.Buffer
	b.WriteString(`{"Version":`)
	v, _ := json.Marshal(version)
	b.Write(v)
	if len(p.ID) > 0 {
		b.WriteString(`,"Id":`)
		b.Write(p.ID)
	}
	b.WriteString(`,"Statement":[`)
	for i, s := range all {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(s)
	}
	b.WriteString("]}")
	if b.Len() > MaxBucketPolicyBytes {
		return nil, fmt.Errorf("bucket policy would be %d bytes; S3 allows %d: move some pairs to another bucket or remove foreign statements", b.Len(), MaxBucketPolicyBytes)
	}
	return b.Bytes(), nil
}
