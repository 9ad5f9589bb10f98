package faultproxy

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Protocol is the AWS wire protocol of a request; it decides what an injected error looks
// like.
type Protocol string

// Protocols.
const (
	RESTXML Protocol = "rest-xml" // S3
	Query   Protocol = "query"    // IAM, STS, Redshift: form-encoded Action=, XML answers
	JSON    Protocol = "json"     // X-Amz-Target
)

// Request is what the proxy knows about an AWS request.
type Request struct {
	// Service is the signing name from the SigV4 credential scope ("s3", "iam", "sts",
	// "redshift"), which is also how awsconn.Counter names services; "" when unsigned.
	Service string
	// Operation is the API operation ("PutBucketPolicy", "CreateRole"); "" when the proxy
	// cannot tell.
	Operation string
	Protocol  Protocol
	Method    string
	Path      string
	// AccessKey is the access key id from the credential scope: it tells the sessions, and
	// so the accounts, of one client apart.
	AccessKey string
	// Invocation and Attempt: see Entry.
	Invocation string
	Attempt    int
}

// Op is "service:Operation", as awsconn.Counter counts it.
func (r Request) Op() string { return r.Service + ":" + r.Operation }

// classify names the operation of r: from X-Amz-Target (JSON protocols), from the Action
// parameter (query protocols), or, for S3, from the method, path and sub-resource (path-style
// addressing, which the SDK uses against an IP endpoint).
func classify(r *http.Request, body []byte) Request {
	req := Request{Method: r.Method, Path: r.URL.Path, Invocation: r.Header.Get("Amz-Sdk-Invocation-Id")}
	req.AccessKey, req.Service = credentialScope(r)
	for _, kv := range strings.Split(r.Header.Get("Amz-Sdk-Request"), ";") { // "attempt=2; max=3"
		if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "attempt="); ok {
			req.Attempt, _ = strconv.Atoi(v)
		}
	}
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		req.Protocol, req.Operation = JSON, t[strings.LastIndex(t, ".")+1:]
		return req
	}
	if a := action(r, body); a != "" {
		req.Protocol, req.Operation = Query, a
		return req
	}
	req.Protocol = RESTXML
	if req.Service == "s3" || req.Service == "" {
		req.Operation = s3Operation(r)
	}
	return req
}

// credentialScope reads the access key id and the service from
// "Credential=AKID/DATE/REGION/SERVICE/aws4_request", in the Authorization header or, for
// presigned URLs, the X-Amz-Credential parameter.
func credentialScope(r *http.Request) (accessKey, service string) {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); auth != "" {
		if _, after, ok := strings.Cut(auth, "Credential="); ok {
			cred, _, _ = strings.Cut(after, ",")
		}
	}
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return "", ""
	}
	return parts[0], parts[3]
}

func action(r *http.Request, body []byte) string {
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return form.Get("Action")
}

// S3 sub-resources of buckets, by query key, and the name they give Get/Put/Delete.
var bucketSubresources = []struct{ key, name string }{
	{"policy", "BucketPolicy"},
	{"policyStatus", "BucketPolicyStatus"},
	{"publicAccessBlock", "PublicAccessBlock"},
	{"ownershipControls", "BucketOwnershipControls"},
	{"encryption", "BucketEncryption"},
	{"tagging", "BucketTagging"},
	{"acl", "BucketAcl"},
	{"versioning", "BucketVersioning"},
	{"lifecycle", "BucketLifecycleConfiguration"},
	{"cors", "BucketCors"},
	{"website", "BucketWebsite"},
	{"logging", "BucketLogging"},
	{"notification", "BucketNotificationConfiguration"},
	{"replication", "BucketReplication"},
	{"location", "BucketLocation"},
	{"object-lock", "ObjectLockConfiguration"},
	{"accelerate", "BucketAccelerateConfiguration"},
	{"requestPayment", "BucketRequestPayment"},
}

var verbs = map[string]string{http.MethodGet: "Get", http.MethodPut: "Put", http.MethodDelete: "Delete"}

func s3Operation(r *http.Request) string {
	q := r.URL.Query()
	if id := q.Get("x-id"); id != "" { // the SDK names some operations itself
		return id
	}
	has := func(k string) bool { _, ok := q[k]; return ok }
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case bucket == "" && r.Method == http.MethodGet:
		return "ListBuckets"
	case bucket == "":
		return ""
	case key == "":
		for _, s := range bucketSubresources {
			if has(s.key) && verbs[r.Method] != "" {
				return verbs[r.Method] + s.name
			}
		}
		switch r.Method {
		case http.MethodPut:
			return "CreateBucket"
		case http.MethodDelete:
			return "DeleteBucket"
		case http.MethodHead:
			return "HeadBucket"
		case http.MethodPost:
			if has("delete") {
				return "DeleteObjects"
			}
		case http.MethodGet:
			switch {
			case has("uploads"):
				return "ListMultipartUploads"
			case has("versions"):
				return "ListObjectVersions"
			case q.Get("list-type") == "2":
				return "ListObjectsV2"
			}
			return "ListObjects"
		}
		return ""
	}
	switch {
	case has("tagging") && verbs[r.Method] != "":
		return verbs[r.Method] + "ObjectTagging"
	case has("acl") && r.Method != http.MethodDelete && verbs[r.Method] != "":
		return verbs[r.Method] + "ObjectAcl"
	case has("uploads") && r.Method == http.MethodPost:
		return "CreateMultipartUpload"
	case has("uploadId"):
		switch r.Method {
		case http.MethodPut:
			if r.Header.Get("X-Amz-Copy-Source") != "" {
				return "UploadPartCopy"
			}
			return "UploadPart"
		case http.MethodPost:
			return "CompleteMultipartUpload"
		case http.MethodDelete:
			return "AbortMultipartUpload"
		case http.MethodGet:
			return "ListParts"
		}
		return ""
	}
	switch r.Method {
	case http.MethodPut:
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			return "CopyObject"
		}
		return "PutObject"
	case http.MethodGet:
		return "GetObject"
	case http.MethodHead:
		return "HeadObject"
	case http.MethodDelete:
		return "DeleteObject"
	}
	return ""
}
